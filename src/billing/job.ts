/**
 * The worker's billing job. It runs every minute under a PostgreSQL advisory lock, so one worker
 * bills at a time. Each check grants the month's free allowance and bills graded hours and the
 * previous day's aggregation topics. Then it resumes Units whose owners can pay again and retries
 * broker changes that failed.
 */
import { and, desc, eq, gte, sql } from "drizzle-orm";
import type pg from "pg";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import { type BillingRunKind, billingRuns, gradingRuns } from "../db/schema/index.ts";
import { runPeriodically } from "../jobs/loop.ts";
import { floorHour } from "../timeseries/time.ts";
import {
  type BillingDependencies,
  grantMonthlyAllowances,
  runAggregationBilling,
  runUsageBilling,
} from "./run.ts";
import { applyPendingBrokerChanges, resumeFundedOwners } from "./stopping.ts";

const BILLING_JOB_LOCK_KEY = 0x50554249_4c4c;
const CHECK_INTERVAL_MS = 60_000;
/** Graded hours older than this are not billed by the job; `POST /billing/run` still can. */
export const BILLING_WINDOW_MS = 6 * 3_600_000;
/** Time after a failed run before the job bills the same period again. */
export const RETRY_DELAY_MS = 10 * 60_000;

export interface BillingJobOptions extends BillingDependencies {
  pool: pg.Pool;
  signal: AbortSignal;
  clock?: () => Date;
}

/**
 * Returns whether the job should bill `period` now: no settled run, or a run that failed, died
 * or left retryable charge failures at least {@link RETRY_DELAY_MS} ago.
 */
async function isDue(
  options: BillingDependencies,
  kind: BillingRunKind,
  period: Date,
  now: Date,
): Promise<boolean> {
  const [latest] = await options.db
    .select({
      status: billingRuns.status,
      startedAt: billingRuns.startedAt,
      retryableFailures: sql<boolean>`jsonb_path_exists(${billingRuns.details}, '$.failures[*] ? (@.retryable == true)')`,
    })
    .from(billingRuns)
    .where(and(eq(billingRuns.kind, kind), eq(billingRuns.period, period)))
    .orderBy(desc(billingRuns.startedAt))
    .limit(1);
  if (latest === undefined) return true;
  const retryDue = now.getTime() - latest.startedAt.getTime() >= RETRY_DELAY_MS;
  if (latest.status === "failed") return retryDue;
  // A `running` row without a finish belongs to a process that died mid-run. Its charges are
  // idempotent, so billing the period again after the retry delay finishes it.
  if (latest.status === "running") return retryDue;
  // A completed run whose charges lost races to concurrent spends after every attempt: the
  // next run charges only those, because the others are found in the ledger.
  if (latest.status === "completed" && latest.retryableFailures) return retryDue;
  return false;
}

/** Runs one check of the job. */
export async function runBillingCheck(
  options: Omit<BillingJobOptions, "pool" | "signal">,
): Promise<void> {
  const now = (options.clock ?? (() => new Date()))();
  await grantMonthlyAllowances(options, now);

  const graded = await options.db
    .selectDistinct({ hour: gradingRuns.hour })
    .from(gradingRuns)
    .where(
      and(
        eq(gradingRuns.status, "completed"),
        gte(gradingRuns.hour, new Date(floorHour(now).getTime() - BILLING_WINDOW_MS)),
      ),
    )
    .orderBy(gradingRuns.hour);
  for (const { hour } of graded) {
    if (await isDue(options, "usage", hour, now)) {
      await runUsageBilling(options, { hour, trigger: "schedule" });
    }
  }

  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (await isDue(options, "aggregation", yesterday, now)) {
    await runAggregationBilling(options, { day: yesterday, trigger: "schedule" });
  }

  await resumeFundedOwners(options);
  await applyPendingBrokerChanges(options);
}

export function startBillingJob(options: BillingJobOptions): Promise<void> {
  const lock = new AdvisoryLockHolder(options.pool, BILLING_JOB_LOCK_KEY);
  options.signal.addEventListener("abort", () => void lock.release(), { once: true });
  return runPeriodically(
    {
      name: "billing",
      intervalMs: CHECK_INTERVAL_MS,
      run: async () => {
        if (!(await lock.hold())) return false;
        await runBillingCheck(options);
        return false;
      },
    },
    options.signal,
  );
}
