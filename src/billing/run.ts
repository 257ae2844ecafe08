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
  unitBillingState,
  unitGrades,
  unitNodes,
  units,
  users,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import {
  aggregationDayCharge,
  aggregationPostingKey,
  type BillingSettings,
  billingColour,
  chargeUser,
  effectiveHalfCapacityPrice,
  grantMonthlyAllowance,
  monthKey,
  settingsJson,
  unitHourCharge,
  usagePostingKey,
} from "../money/billing/index.ts";
import type { TimeSeriesStore } from "../timeseries/store.ts";
import { loadBillingSettings } from "./settings-store.ts";
import { type StoppingDependencies, stopUnit } from "./stopping.ts";

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

interface RunTally {
  charged: number;
  total: bigint;
  failures: { id: string; error: string }[];
  stopped: string[];
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
): Promise<BillingRunRow> {
  const [finished] = await db
    .update(billingRuns)
    .set({
      status: "completed",
      charged: tally.charged,
      total: tally.total,
      failures: tally.failures.length,
      details: { ...run.details, failures: tally.failures, stoppedUnits: tally.stopped },
      finishedAt: sql`clock_timestamp()`,
    })
    .where(eq(billingRuns.id, run.id))
    .returning();
  logger.info(
    "Billing run {runId} completed: {charged} charged, {total} tokens, {failures} failures, {stopped} Units stopped",
    {
      runId: run.id,
      charged: tally.charged,
      total: tally.total,
      failures: tally.failures.length,
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

/**
 * Charges every yellow and red Unit of the graded `hour` for its load. Raises
 * {@link BillingInputError} when the hour has no completed grading run. With monetisation off
 * the run is stored as `skipped` and nothing is charged.
 */
export async function runUsageBilling(
  dependencies: BillingDependencies,
  request: { hour: Date; trigger: BillingTrigger },
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
    const tally: RunTally = { charged: 0, total: 0n, failures: [], stopped: [] };
    const grades = await db
      .select({
        unitId: unitGrades.unitId,
        percentile: unitGrades.percentile,
        messages: unitGrades.messages,
        ownerId: units.ownerId,
        stopKey: unitBillingState.chargeKey,
      })
      .from(unitGrades)
      .innerJoin(units, eq(units.id, unitGrades.unitId))
      .leftJoin(unitBillingState, eq(unitBillingState.unitId, unitGrades.unitId))
      .where(eq(unitGrades.hour, request.hour));
    // NOTE: the signed load report publishes PU_NODE_PRICE_PER_MPS and the other grade
    // parameters from the configuration, while charges use these settings and the curve with K.
    const priceSettings = {
      capacityMps: config.grading.capacityMps,
      freeMps: settings.freeMps,
      halfCapacityPrice: effectiveHalfCapacityPrice(settings),
    };

    for (const grade of grades) {
      const colour = billingColour(grade.percentile, settings);
      if (colour === "green") continue;
      const key = usagePostingKey(grade.unitId, request.hour);
      // A Unit stopped by this very charge was settled by an earlier attempt.
      if (grade.stopKey === key) continue;
      try {
        if (grade.ownerId === null) throw new Error(`Unit ${grade.unitId} has no owner to charge`);
        const charge = unitHourCharge(BigInt(grade.messages), priceSettings);
        const outcome = await chargeUser(db, {
          userId: grade.ownerId,
          idempotencyKey: key,
          price: charge.price,
          kind: "usage",
          description: `Load of Unit ${grade.unitId} in ${request.hour.toISOString()}`,
          metadata: {
            unitId: grade.unitId,
            hour: request.hour.toISOString(),
            colour,
            messages: charge.messages.toString(),
            freeMessages: charge.freeMessages.toString(),
            capacityMessages: charge.capacityMessages.toString(),
          },
        });
        if (outcome.status === "charged") {
          tally.charged += 1;
          tally.total += outcome.charged;
        }
        const exhausted =
          outcome.status === "exhausted" ||
          (outcome.status === "already_charged" && outcome.exhausted);
        if (outcome.status === "exhausted") {
          if (outcome.charged > 0n) tally.charged += 1;
          tally.total += outcome.charged;
        }
        if (exhausted) {
          await stopUnit(dependencies, {
            unitId: grade.unitId,
            ownerId: grade.ownerId,
            reason: charge.price.kind === "unbounded" ? "load_at_capacity" : "balance_exhausted",
            chargeKey: key,
            charged: outcome.status === "exhausted" ? outcome.charged : 0n,
          });
          tally.stopped.push(grade.unitId);
        }
      } catch (error) {
        logger.error("Charging Unit {unitId} for hour {hour} failed: {error}", {
          unitId: grade.unitId,
          hour: request.hour.toISOString(),
          error,
        });
        tally.failures.push({ id: grade.unitId, error: String(error) });
      }
    }
    return await finishRun(db, run, tally);
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
    const tally: RunTally = { charged: 0, total: 0n, failures: [], stopped: [] };
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
        const outcome = await chargeUser(db, {
          userId,
          idempotencyKey: aggregationPostingKey(userId, request.day),
          price: { kind: "finite", amount },
          kind: "aggregation",
          description: `Aggregation topics of ${request.day.toISOString().slice(0, 10)}`,
          metadata: { day: request.day.toISOString().slice(0, 10), topicUnits: count },
        });
        if (outcome.status === "charged" || outcome.status === "exhausted") {
          tally.charged += outcome.charged > 0n ? 1 : 0;
          tally.total += outcome.charged;
        }
      } catch (error) {
        logger.error("Charging aggregation topics of user {userId} failed: {error}", {
          userId,
          error,
        });
        tally.failures.push({ id: userId, error: String(error) });
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
    logger.info("Granted the free tokens of {month} to {granted} users", { month, granted });
  }
  return granted;
}
