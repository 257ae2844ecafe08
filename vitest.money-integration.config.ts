/**
 * The money integration run (`npm run test:money:integration`): the money tests against the
 * real test PostgreSQL server, the payment API fakes over HTTP on loopback and child processes,
 * plus the billing and payment runtime tests that drive the money code through the node.
 * Coverage of src/money must reach 100% from these tests alone.
 */
import { defineConfig } from "vitest/config";
import { moneyCoverage } from "./test/money-coverage.ts";

export default defineConfig({
  test: {
    include: ["src/money/**/*.test.ts", "src/billing/**/*.test.ts", "src/payments/**/*.test.ts"],
    exclude: ["**/*.unit.test.ts", "**/node_modules/**"],
    globalSetup: ["./test/global-setup.ts"],
    env: { PU_NODE_TEST_DATABASE_BACKEND: "postgres" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/reporters/skip-guard.ts"],
    coverage: moneyCoverage("integration"),
  },
});
