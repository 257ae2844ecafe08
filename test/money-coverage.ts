/**
 * Coverage settings of the two money runs. The money code (ledger, pricing, billing rules and
 * payments under src/money) must be fully covered by the unit tests alone and again by the
 * integration tests alone, so each run fails below 100%.
 */
import type { CoverageOptions } from "vitest/node";

export function moneyCoverage(run: "unit" | "integration"): CoverageOptions {
  return {
    enabled: true,
    provider: "v8",
    include: ["src/money/**/*.ts"],
    exclude: ["**/*.test.ts"],
    reporter: ["text", "json-summary"],
    reportsDirectory: `coverage/money-${run}`,
    thresholds: {
      "src/money/**/*.ts": { lines: 100, branches: 100, functions: 100, statements: 100 },
    },
  };
}
