import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "src/**/*.test.ts",
      "federation/**/*.test.ts",
      "e2e-multinode/**/*.test.ts",
      "test/**/*.test.ts",
    ],
    globalSetup: ["./test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/reporters/skip-guard.ts"],
    // Coverage runs only with --coverage (`npm run test:money`). The money code must stay fully
    // covered, so the run fails below 100% there.
    coverage: {
      provider: "v8",
      include: ["src/money/**/*.ts"],
      exclude: ["**/*.test.ts"],
      reporter: ["text", "json-summary"],
      thresholds: {
        "src/money/**/*.ts": { lines: 100, branches: 100, functions: 100, statements: 100 },
      },
    },
  },
});
