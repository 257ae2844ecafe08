/**
 * Topic counters on PostgreSQL: batch writes with a ledger, hourly rollups, counter sums and
 * retention. Every helper takes the database handle first.
 */
import { and, eq, gte, lt, sql } from "drizzle-orm";
import type { Database, DatabaseLike } from "../../db/client.ts";
import {
  counterBatches,
  timeseriesJobState,
  topicCounterHours,
  topicCounterMinutes,
} from "../../db/schema/index.ts";
import type { CounterGroup, CounterSum, CounterSumOptions, WindowPlan } from "../load.ts";
import { nextWatermark, planRollup, ROLLUP_JOB } from "../schedule.ts";
import type { RollUpResult } from "../store.ts";
import type { BatchWriteOutcome, CounterBatch } from "../types.ts";
import { writeBatchOnce } from "./ledger.ts";

/**
 * Writes a normalized batch (see `normalizeCounterBatch`) once per batch id, as `writeBatchOnce`
 * describes. Rows arrive sorted by minute and topic, so concurrent batches lock shared minute rows
 * in the same order.
 */
export async function writeCounterBatch(
  db: Database,
  batch: CounterBatch,
): Promise<BatchWriteOutcome> {
  return await writeBatchOnce(
    db,
    batch.rows,
    async (tx, newestMinute) => {
      const recorded = await tx
        .insert(counterBatches)
        .values({
          batchId: batch.batchId,
          tapId: batch.tapId,
          newestMinute,
          rows: batch.rows.length,
        })
        .onConflictDoNothing()
        .returning({ batchId: counterBatches.batchId });
      return recorded.length > 0;
    },
    async (tx, chunk) => {
      await tx
        .insert(topicCounterMinutes)
        .values(chunk)
        .onConflictDoUpdate({
          target: [topicCounterMinutes.minute, topicCounterMinutes.topic],
          set: {
            messages: sql`${topicCounterMinutes.messages} + excluded.messages`,
            bytes: sql`${topicCounterMinutes.bytes} + excluded.bytes`,
            // Attribution follows the latest batch, as the catalogue may have changed.
            domain: sql`excluded.domain`,
            domainKind: sql`excluded.domain_kind`,
            unitNodeId: sql`excluded.unit_node_id`,
            unitId: sql`excluded.unit_id`,
            repoId: sql`excluded.repo_id`,
          },
        });
    },
  );
}

export async function readRollupWatermark(db: DatabaseLike): Promise<Date | null> {
  const rows = await db
    .select({ through: timeseriesJobState.through })
    .from(timeseriesJobState)
    .where(eq(timeseriesJobState.job, ROLLUP_JOB));
  return rows[0]?.through ?? null;
}

// Arbitrary constant that serializes rollup runs of all processes on one database.
const ROLLUP_LOCK_KEY = 7_305_512_001;

/**
 * Recomputes hourly rows for the planned hours in one transaction: it deletes them and inserts
 * fresh sums of the minute rows, then moves the watermark. Attribution comes from each topic's
 * latest minute in the hour.
 */
export async function rollUp(db: Database, now: Date): Promise<RollUpResult> {
  return await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${ROLLUP_LOCK_KEY})`);
    const watermark = await readRollupWatermark(tx);
    const oldest =
      watermark === null
        ? ((
            await tx
              .select({ minute: sql<Date | null>`min(${topicCounterMinutes.minute})` })
              .from(topicCounterMinutes)
          )[0]?.minute ?? null)
        : null;
    const { from, to } = planRollup(now, watermark, oldest === null ? null : new Date(oldest));

    let rows = 0;
    if (from.getTime() < to.getTime()) {
      await tx
        .delete(topicCounterHours)
        .where(and(gte(topicCounterHours.hour, from), lt(topicCounterHours.hour, to)));
      const inserted = await tx.execute(sql`
        insert into topic_counter_hours
          (hour, topic, domain, domain_kind, unit_node_id, unit_id, repo_id, messages, bytes)
        select date_trunc('hour', minute, 'UTC') as hour, topic,
          (array_agg(domain order by minute desc))[1],
          (array_agg(domain_kind order by minute desc))[1],
          (array_agg(unit_node_id order by minute desc))[1],
          (array_agg(unit_id order by minute desc))[1],
          (array_agg(repo_id order by minute desc))[1],
          sum(messages), sum(bytes)
        from topic_counter_minutes
        where minute >= ${from} and minute < ${to}
        group by 1, topic`);
      rows = inserted.rowCount ?? 0;
    }

    await tx
      .insert(timeseriesJobState)
      .values({ job: ROLLUP_JOB, through: nextWatermark(watermark, to) })
      .onConflictDoUpdate({
        target: timeseriesJobState.job,
        set: { through: nextWatermark(watermark, to), updatedAt: sql`now()` },
      });
    return { from, to, rows };
  });
}

const KEY_COLUMN: Record<CounterGroup, ReturnType<typeof sql.raw>> = {
  topic: sql.raw("topic"),
  unit_node_id: sql.raw("unit_node_id::text"),
  unit_id: sql.raw("unit_id::text"),
  domain: sql.raw("domain"),
};

/** Sums messages and bytes per key in each plan with one query over both counter tables. */
export async function sumCounters(
  db: DatabaseLike,
  group: CounterGroup,
  plans: WindowPlan[],
  options: CounterSumOptions = {},
): Promise<CounterSum[]> {
  if (plans.length === 0) return [];
  const minuteFrom = new Date(Math.min(...plans.map((plan) => plan.minutesFrom.getTime())));
  const minuteTo = new Date(Math.max(...plans.map((plan) => plan.minutesTo.getTime())));
  const hourFrom = new Date(Math.min(...plans.map((plan) => plan.hoursFrom.getTime())));
  const hourTo = new Date(Math.max(...plans.map((plan) => plan.hoursTo.getTime())));
  const key = KEY_COLUMN[group];

  const totals = plans.flatMap((plan, index) => {
    const inPlan = sql`((kind = 'm' and at >= ${plan.minutesFrom} and at < ${plan.minutesTo})
      or (kind = 'h' and at >= ${plan.hoursFrom} and at < ${plan.hoursTo}))`;
    return [
      sql`coalesce(sum(messages) filter (where ${inPlan}), 0)::float8 as ${sql.raw(`m${index}`)}`,
      sql`coalesce(sum(bytes) filter (where ${inPlan}), 0)::float8 as ${sql.raw(`b${index}`)}`,
    ];
  });
  const limit =
    options.limit === undefined
      ? sql``
      : sql`order by m0 desc, key collate "C" asc limit ${Math.trunc(options.limit)}`;

  const result = await db.execute(sql`
    with source as (
      select 'm' as kind, minute as at, ${key} as key, repo_id, messages, bytes
      from topic_counter_minutes
      where minute >= ${minuteFrom} and minute < ${minuteTo}
      union all
      select 'h' as kind, hour as at, ${key} as key, repo_id, messages, bytes
      from topic_counter_hours
      where hour >= ${hourFrom} and hour < ${hourTo}
    )
    select key,
      ((array_agg(repo_id::text order by at desc) filter (where repo_id is not null))[1]) as repo_id,
      ${sql.join(totals, sql`, `)}
    from source
    where key is not null
    group by key
    ${limit}`);

  return result.rows.map((row) => {
    const record = row as Record<string, unknown>;
    return {
      key: String(record.key),
      repoId: group === "unit_id" && record.repo_id != null ? String(record.repo_id) : null,
      messages: plans.map((_, index) => Number(record[`m${index}`])),
      bytes: plans.map((_, index) => Number(record[`b${index}`])),
    };
  });
}
