/**
 * Billing runs: the hourly charge of yellow and red Units, the daily charge of aggregation
 * topics and the monthly free allowance. Every charge is idempotent by its ledger key, so a rerun
 * or a second worker charges nothing twice. Each run keeps a row in `billing_runs`.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import {
  type BillingRunKind,
  type BillingRunRow,
  type BillingTrigger,
  billingRuns,
  gradingRuns,
  unitNodes,
  units,
  users,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import {
  aggregationDayCharge,
  aggregationPostingKey,
  type BillingSettings,
  effectiveHalfCapacityPrice,
  grantMonthlyAllowance,
  monthKey,
  settingsJson,
} from "../money/billing/index.ts";
import type { TimeSeriesStore } from "../timeseries/store.ts";
import { chargeWithRetry, MAX_CHARGE_ATTEMPTS } from "./charge-retry.ts";
import { loadBillingSettings } from "./settings-store.ts";
import type { StoppingDependencies } from "./stopping.ts";
import {
  createTally,
  loadUsageGrades,
  postUsageCharges,
  priceUsageCharges,
  type RunTally,
} from "./usage-charges.ts";

const logger = getNodeLogger("money", "billing");

export interface BillingDependencies extends StoppingDependencies {
  config: Config;
  store: TimeSeriesStore;
}

/** Raised for a period that cannot be billed, before any row is written. */
export class BillingInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BillingInputError";
  }
}

async function startRun(
  db: Database,
  kind: BillingRunKind,
  period: Date,
  trigger: BillingTrigger,
  settings: BillingSettings,
): Promise<BillingRunRow> {
  const [run] = await db
    .insert(billingRuns)
    .values({
      kind,
      period,
      trigger,
      status: settings.enabled ? "running" : "skipped",
      details: { settings: settingsJson(settings) },
      finishedAt: settings.enabled ? null : sql`clock_timestamp()`,
    })
    .returning();
  const started = run as BillingRunRow;
  logger.info("Billing run {runId}: {kind} of {period} ({trigger}){skipped}", {
    runId: started.id,
    kind,
    period: period.toISOString(),
    trigger,
    skipped: settings.enabled ? "" : ", skipped because monetisation is off",
  });
  return started;
}

async function finishRun(
  db: Database,
  run: BillingRunRow,
  tally: RunTally,
  extraDetails: Record<string, unknown> = {},
): Promise<BillingRunRow> {
  const [finished] = await db
    .update(billingRuns)
    .set({
      status: "completed",
      charged: tally.charged,
      total: tally.total,
      failures: tally.failures.length,
      details: {
        ...run.details,
        ...extraDetails,
        failures: tally.failures,
        stoppedUnits: tally.stopped,
        retries: tally.retries,
      },
      finishedAt: sql`clock_timestamp()`,
    })
    .where(eq(billingRuns.id, run.id))
    .returning();
  logger.info(
    "Billing run {runId} completed: {charged} charged, {total} tokens, {failures} failures ({retryable} retryable), {retries} retries, {stopped} Units stopped",
    {
      runId: run.id,
      charged: tally.charged,
      // LogTape writes a bigint with its `n` suffix, as in "2310n tokens".
      total: tally.total.toString(),
      failures: tally.failures.length,
      retryable: tally.failures.filter((failure) => failure.retryable).length,
      retries: tally.retries,
      stopped: tally.stopped.length,
    },
  );
  return finished as BillingRunRow;
}

async function failRun(db: Database, run: BillingRunRow, error: unknown): Promise<void> {
  logger.error("Billing run {runId} of {period} failed: {error}", {
    runId: run.id,
    period: run.period.toISOString(),
    error,
  });
  await db
    .update(billingRuns)
    .set({ status: "failed", error: String(error), finishedAt: sql`clock_timestamp()` })
    .where(eq(billingRuns.id, run.id))
    .catch((updateError: unknown) => {
      logger.error("Marking billing run {runId} failed did not work: {error}", {
        runId: run.id,
        error: updateError,
      });
    });
}

export interface UsageRunRequest {
  hour: Date;
  trigger: BillingTrigger;
  /** Owners charged in parallel, {@link DEFAULT_CHARGE_CONCURRENCY} when omitted. */
  concurrency?: number;
  /** Attempts of one charge, {@link MAX_CHARGE_ATTEMPTS} when omitted. */
  maxChargeAttempts?: number;
}

/**
 * Owners charged in parallel by an hourly run. Every charge locks the one `revenue_usage`
 * account, so more connections add little (docs/benchmarks.md, "Hourly billing run").
 */
export const DEFAULT_CHARGE_CONCURRENCY = 1;

/**
 * Charges every yellow and red Unit of the graded `hour` for its load. Raises
 * {@link BillingInputError} when the hour has no completed grading run. With monetisation off
 * the run is stored as `skipped` and nothing is charged.
 */
export async function runUsageBilling(
  dependencies: BillingDependencies,
  request: UsageRunRequest,
): Promise<BillingRunRow> {
  const { db, config } = dependencies;
  const [graded] = await db
    .select({ id: gradingRuns.id })
    .from(gradingRuns)
    .where(and(eq(gradingRuns.hour, request.hour), eq(gradingRuns.status, "completed")))
    .limit(1);
  if (graded === undefined) {
    throw new BillingInputError(
      `hour ${request.hour.toISOString()} has no completed grading run; grade it first with POST /api/v1/grading/run`,
    );
  }
  const { settings } = await loadBillingSettings(db, config);
  const run = await startRun(db, "usage", request.hour, request.trigger, settings);
  if (!settings.enabled) return run;

  try {
    const tally = createTally();
    const loadStarted = performance.now();
    const grades = await loadUsageGrades(db, request.hour);
    const pricingStarted = performance.now();
    // The load report and NodeInfo publish the same figures from src/reports/price-parameters.ts,
    // so a change here needs the same change there.
    const priceSettings = {
      capacityMps: config.grading.capacityMps,
      freeMps: settings.freeMps,
      halfCapacityPrice: effectiveHalfCapacityPrice(settings),
    };
    const pending = priceUsageCharges(grades, request.hour, settings, priceSettings, tally);
    const postingStarted = performance.now();
    await postUsageCharges(
      dependencies,
      pending,
      {
        hour: request.hour,
        concurrency: request.concurrency ?? DEFAULT_CHARGE_CONCURRENCY,
        maxAttempts: request.maxChargeAttempts ?? MAX_CHARGE_ATTEMPTS,
      },
      tally,
    );
    const finished = performance.now();
    return await finishRun(db, run, tally, {
      grades: grades.length,
      pendingCharges: pending.length,
      timingsMs: {
        loadingGrades: Math.round(pricingStarted - loadStarted),
        pricing: Math.round(postingStarted - pricingStarted),
        posting: Math.round(finished - postingStarted),
      },
    });
  } catch (error) {
    await failRun(db, run, error);
    throw error;
  }
}

/**
 * Charges each user for the aggregation topic units of their UnitNodes in the UTC `day`, from the
 * latest aggregation space snapshot. A user who cannot pay is charged what is left; their Units
 * stop at the next hourly charge they cannot pay.
 */
export async function runAggregationBilling(
  dependencies: BillingDependencies,
  request: { day: Date; trigger: BillingTrigger },
): Promise<BillingRunRow> {
  const { db, config, store } = dependencies;
  const { settings } = await loadBillingSettings(db, config);
  const run = await startRun(db, "aggregation", request.day, request.trigger, settings);
  if (!settings.enabled) return run;

  try {
    const tally = createTally();
    const snapshot = await store.latestAggregationSpace();
    const perNode = new Map<string, { rows: number; bytes: number }>();
    for (const entry of snapshot?.unitNodes ?? []) {
      const total = perNode.get(entry.unitNodeId) ?? { rows: 0, bytes: 0 };
      total.rows += entry.rows;
      total.bytes += entry.bytes;
      perNode.set(entry.unitNodeId, total);
    }
    const nodeIds = [...perNode.keys()];
    const owners =
      nodeIds.length === 0
        ? []
        : await db
            .select({ nodeId: unitNodes.id, ownerId: units.ownerId })
            .from(unitNodes)
            .innerJoin(units, eq(units.id, unitNodes.unitId))
            .where(inArray(unitNodes.id, nodeIds));
    // The same metric as the load report: a topic with rows counts one unit per started block
    // of PU_NODE_AGGREGATION_TOPIC_BYTES.
    const topicUnits = new Map<string, number>();
    for (const { nodeId, ownerId } of owners) {
      const space = perNode.get(nodeId);
      if (ownerId === null || space === undefined || space.rows === 0) continue;
      const unitsOfNode = Math.max(
        1,
        Math.ceil(space.bytes / config.loadReport.aggregationTopicBytes),
      );
      topicUnits.set(ownerId, (topicUnits.get(ownerId) ?? 0) + unitsOfNode);
    }

    for (const [userId, count] of topicUnits) {
      try {
        const amount = aggregationDayCharge(count, settings);
        const { outcome } = await chargeWithRetry(
          db,
          {
            userId,
            idempotencyKey: aggregationPostingKey(userId, request.day),
            price: { kind: "finite", amount },
            kind: "aggregation",
            description: `Aggregation topics of ${request.day.toISOString().slice(0, 10)}`,
            metadata: { day: request.day.toISOString().slice(0, 10), topicUnits: count },
          },
          MAX_CHARGE_ATTEMPTS,
          (attempt, error) => {
            tally.retries += 1;
            logger.warn(
              "Charging aggregation topics of user {userId} lost a race with another spend, retrying (attempt {attempt} failed): {error}",
              { userId, attempt, error },
            );
          },
        );
        if (outcome.status === "charged" || outcome.status === "exhausted") {
          tally.charged += outcome.charged > 0n ? 1 : 0;
          tally.total += outcome.charged;
        }
      } catch (error) {
        logger.error("Charging aggregation topics of user {userId} failed: {error}", {
          userId,
          error,
        });
        tally.failures.push({ id: userId, error: String(error), retryable: true });
      }
    }
    return await finishRun(db, run, tally);
  } catch (error) {
    await failRun(db, run, error);
    throw error;
  }
}

/**
 * Grants the allowance of the month of `now` to every user who lacks it, while monetisation is
 * on. Users created later in the month get it at the next check. Returns the users granted.
 */
export async function grantMonthlyAllowances(
  dependencies: Pick<BillingDependencies, "db" | "config">,
  now: Date,
): Promise<number> {
  const { db, config } = dependencies;
  const { settings } = await loadBillingSettings(db, config);
  if (!settings.enabled) return 0;
  const month = monthKey(now);
  const pending = await db
    .select({ id: users.id })
    .from(users)
    .where(
      sql`not exists (select 1 from ledger_transactions t where t.idempotency_key = 'free:' || ${users.id}::text || ':' || ${month})`,
    );
  let granted = 0;
  for (const { id } of pending) {
    try {
      const outcome = await grantMonthlyAllowance(db, id, month, settings.monthlyAllowance);
      if (outcome.status === "granted" && outcome.transactionId !== null) granted += 1;
    } catch (error) {
      logger.error("Granting the free tokens of {month} to user {userId} failed: {error}", {
        month,
        userId: id,
        error,
      });
    }
  }
  if (granted > 0) {
    logger.info("Granted the free tokens of {month} to {granted} user(s)", { month, granted });
  }
  return granted;
}
