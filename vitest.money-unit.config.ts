/**
 * The money unit run (`npm run test:money:unit`): every money test that runs in one process,
 * the database being PGlite and the payment APIs fakes served through their `fetch` method.
 * No server is started, and test/unit-isolation.ts fails any test that opens a socket or
 * starts a process. Coverage of src/money must reach 100% from these tests alone.
 */
import { defineConfig } from "vitest/config";
import { moneyCoverage } from "./test/money-coverage.ts";

export default defineConfig({
  test: {
    include: ["src/money/**/*.test.ts"],
    exclude: ["**/*.integration.test.ts", "**/node_modules/**"],
    setupFiles: ["./test/unit-isolation.ts"],
    env: { PU_NODE_TEST_DATABASE_BACKEND: "pglite" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/reporters/skip-guard.ts"],
    coverage: moneyCoverage("unit"),
  },
});
