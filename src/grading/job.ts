/**
 * The worker's hourly grading job. It checks every minute whether the last complete hour has a
 * completed run, and grades it once the hour is {@link GRADING_DELAY_MS} old, so that counter
 * batches the tap is still retrying can land first. Only the worker holding the advisory lock
 * grades, so two workers never grade one hour at once.
 */
import type pg from "pg";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import type { GradingRunRow } from "../db/schema/index.ts";
import { runPeriodically } from "../jobs/loop.ts";
import { floorHour } from "../timeseries/time.ts";
import { lastCompleteHour } from "./measure.ts";
import { type GradingDependencies, hasCompletedRun, latestRunOfHour, runGrading } from "./run.ts";

const GRADING_JOB_LOCK_KEY = 0x50554752_4a42;
/** Time after the end of an hour before it is graded. */
export const GRADING_DELAY_MS = 2 * 60_000;
/** Time after a failed run before the job grades the same hour again. */
export const RETRY_DELAY_MS = 10 * 60_000;
const CHECK_INTERVAL_MS = 60_000;

export interface GradingJobOptions extends GradingDependencies {
  pool: pg.Pool;
  signal: AbortSignal;
  /**
   * Runs after every check, graded or not, such as issuing the load report of the latest run.
   * A failure is logged by the job loop and the step runs again at the next check.
   */
  afterCheck?: () => Promise<void>;
  /** Clock of the job; tests pass a fixed one. */
  clock?: () => Date;
}

/** Runs one check of the job; returns the run when it graded an hour. */
export async function gradeDueHour(
  options: Omit<GradingJobOptions, "pool" | "signal" | "afterCheck">,
): Promise<GradingRunRow | undefined> {
  const now = (options.clock ?? (() => new Date()))();
  if (now.getTime() - floorHour(now).getTime() < GRADING_DELAY_MS) return undefined;
  const hour = lastCompleteHour(now);
  if (await hasCompletedRun(options.db, hour)) return undefined;
  // Each attempt keeps a row, so a failing store is retried every ten minutes, not every check.
  const previous = await latestRunOfHour(options.db, hour);
  if (
    previous?.status === "failed" &&
    now.getTime() - previous.startedAt.getTime() < RETRY_DELAY_MS
  ) {
    return undefined;
  }

  return await runGrading(options, { hour, trigger: "schedule", now });
}

export function startGradingJob(options: GradingJobOptions): Promise<void> {
  const lock = new AdvisoryLockHolder(options.pool, GRADING_JOB_LOCK_KEY);
  options.signal.addEventListener("abort", () => void lock.release(), { once: true });
  return runPeriodically(
    {
      name: "grade-hour",
      intervalMs: CHECK_INTERVAL_MS,
      run: async () => {
        if (!(await lock.hold())) return false;
        await gradeDueHour(options);
        await options.afterCheck?.();
        return false;
      },
    },
    options.signal,
  );
}
