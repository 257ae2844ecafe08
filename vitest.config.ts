import { defineConfig } from "vitest/config";

const MONEY_UNIT_TESTS = "src/money/**/*.unit.test.ts";

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/reporters/skip-guard.ts"],
    projects: [
      {
        // The money unit tests run in one process on PGlite, as in `npm run test:money:unit`.
        extends: true,
        test: {
          name: "money-unit",
          include: [MONEY_UNIT_TESTS],
          setupFiles: ["./test/unit-isolation.ts"],
          env: { PU_NODE_TEST_DATABASE_BACKEND: "pglite" },
        },
      },
      {
        extends: true,
        test: {
          name: "node",
          include: [
            "src/**/*.test.ts",
            "federation/**/*.test.ts",
            "e2e-multinode/**/*.test.ts",
            "test/**/*.test.ts",
          ],
          exclude: [MONEY_UNIT_TESTS, "**/node_modules/**"],
          globalSetup: ["./test/global-setup.ts"],
        },
      },
    ],
  },
});
