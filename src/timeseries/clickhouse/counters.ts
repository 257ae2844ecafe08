/**
 * Topic counters on ClickHouse: batch writes, hourly rollups and counter sums.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type { CounterGroup, CounterSum, CounterSumOptions, WindowPlan } from "../load.ts";
import { nextWatermark, planRollup, ROLLUP_JOB } from "../schedule.ts";
import type { RollUpResult } from "../store.ts";
import { fromUnixSeconds, toUnixSeconds } from "../time.ts";
import type { BatchWriteOutcome, CounterBatch } from "../types.ts";
import { writeBatchOnce } from "./ledger.ts";
import { dateTimeLiteral, integerLiteral, quoteString } from "./sql.ts";

let lastVersion = 0;

/**
 * Returns a row version for ReplacingMergeTree tables: microseconds of the wall clock, raised
 * past the previous value so that later writes of this process always win. Between processes
 * the wall clocks decide.
 */
export function nextVersion(): number {
  lastVersion = Math.max(lastVersion + 1, Date.now() * 1000);
  return lastVersion;
}

/**
 * Writes a normalized batch once per batch id (see `writeBatchOnce`). A retry that races its
 * first attempt writes rows with the same (minute, topic, batch_id) key.
 */
export async function writeCounterBatch(
  client: ClickHouseClient,
  batch: CounterBatch,
): Promise<BatchWriteOutcome> {
  return await writeBatchOnce(
    client,
    { rows: "topic_counter_minutes", ledger: "counter_batches" },
    batch,
    (row) => ({
      topic: row.topic,
      domain: row.domain,
      domain_kind: row.domainKind,
      unit_node_id: row.unitNodeId ?? "",
      unit_id: row.unitId ?? "",
      repo_id: row.repoId ?? "",
      messages: row.messages,
      bytes: row.bytes,
    }),
    { tap_id: batch.tapId },
  );
}

export async function readRollupWatermark(client: ClickHouseClient): Promise<Date | null> {
  const result = await client.query({
    query: `SELECT toUnixTimestamp(argMax(through, version)) AS through, count() AS n
      FROM timeseries_job_state WHERE job = ${quoteString(ROLLUP_JOB)}`,
    format: "JSONEachRow",
  });
  const [row] = await result.json<{ through: number; n: number }>();
  return row && row.n > 0 ? fromUnixSeconds(row.through) : null;
}

/**
 * Recomputes hourly rows for the planned hours with one INSERT ... SELECT that writes a new
 * version of every row, then moves the watermark. A crash between the two leaves the watermark
 * behind, so readers keep using minute rows for those hours and the next run redoes them.
 */
export async function rollUp(client: ClickHouseClient, now: Date): Promise<RollUpResult> {
  const watermark = await readRollupWatermark(client);
  let oldest: Date | null = null;
  if (watermark === null) {
    const result = await client.query({
      query:
        "SELECT toUnixTimestamp(min(minute)) AS oldest, count() AS n FROM topic_counter_minutes",
      format: "JSONEachRow",
    });
    const [row] = await result.json<{ oldest: number; n: number }>();
    oldest = row && row.n > 0 ? fromUnixSeconds(row.oldest) : null;
  }
  const { from, to } = planRollup(now, watermark, oldest);

  let rows = 0;
  if (from.getTime() < to.getTime()) {
    const range = `minute >= ${dateTimeLiteral(from)} AND minute < ${dateTimeLiteral(to)}`;
    await client.command({
      query: `INSERT INTO topic_counter_hours
          (hour, topic, domain, domain_kind, unit_node_id, unit_id, repo_id, messages, bytes, version)
        SELECT toStartOfHour(minute) AS hour, topic,
          argMax(domain, minute), argMax(domain_kind, minute), argMax(unit_node_id, minute),
          argMax(unit_id, minute), argMax(repo_id, minute),
          sum(messages), sum(bytes), ${integerLiteral(nextVersion())}
        FROM topic_counter_minutes FINAL
        WHERE ${range}
        GROUP BY hour, topic`,
    });
    const counted = await client.query({
      query: `SELECT count() AS n FROM (SELECT DISTINCT toStartOfHour(minute), topic
        FROM topic_counter_minutes WHERE ${range})`,
      format: "JSONEachRow",
    });
    rows = (await counted.json<{ n: number }>())[0]?.n ?? 0;
  }

  await client.insert({
    table: "timeseries_job_state",
    values: [
      {
        job: ROLLUP_JOB,
        through: toUnixSeconds(nextWatermark(watermark, to)),
        version: nextVersion(),
      },
    ],
    format: "JSONEachRow",
  });
  return { from, to, rows };
}

const KEY_COLUMN: Record<CounterGroup, string> = {
  topic: "topic",
  unit_node_id: "unit_node_id",
  unit_id: "unit_id",
  domain: "domain",
};

/** Sums messages and bytes per key in each plan with one query over both counter tables. */
export async function sumCounters(
  client: ClickHouseClient,
  group: CounterGroup,
  plans: WindowPlan[],
  options: CounterSumOptions = {},
): Promise<CounterSum[]> {
  if (plans.length === 0) return [];
  const earliest = (dates: Date[]) => new Date(Math.min(...dates.map((date) => date.getTime())));
  const latest = (dates: Date[]) => new Date(Math.max(...dates.map((date) => date.getTime())));
  const minuteFrom = dateTimeLiteral(earliest(plans.map((plan) => plan.minutesFrom)));
  const minuteTo = dateTimeLiteral(latest(plans.map((plan) => plan.minutesTo)));
  const hourFrom = dateTimeLiteral(earliest(plans.map((plan) => plan.hoursFrom)));
  const hourTo = dateTimeLiteral(latest(plans.map((plan) => plan.hoursTo)));
  const key = KEY_COLUMN[group];
  // Missing UnitNode and Unit ids are stored as '' and have no figures; the domain '' is a real
  // key (topics whose first level is not a valid domain).
  const keyFilter = group === "unit_node_id" || group === "unit_id" ? "WHERE key != ''" : "";

  const totals = plans.flatMap((plan, index) => {
    const inPlan = `((kind = 0 AND at >= ${dateTimeLiteral(plan.minutesFrom)} AND at < ${dateTimeLiteral(plan.minutesTo)})
      OR (kind = 1 AND at >= ${dateTimeLiteral(plan.hoursFrom)} AND at < ${dateTimeLiteral(plan.hoursTo)}))`;
    return [`sumIf(messages, ${inPlan}) AS m${index}`, `sumIf(bytes, ${inPlan}) AS b${index}`];
  });
  const limit =
    options.limit === undefined
      ? ""
      : `ORDER BY m0 DESC, key ASC LIMIT ${integerLiteral(options.limit)}`;

  // NOTE: written for ClickHouse 18.16 and meant to run unchanged on 25.x; only 18.16 is tested.
  const result = await client.query({
    query: `SELECT key, argMaxIf(repo_id, at, repo_id != '') AS repo, ${totals.join(", ")}
      FROM (
        SELECT toUInt8(0) AS kind, minute AS at, ${key} AS key, repo_id, messages, bytes
        FROM topic_counter_minutes FINAL
        WHERE minute >= ${minuteFrom} AND minute < ${minuteTo}
        UNION ALL
        SELECT toUInt8(1) AS kind, hour AS at, ${key} AS key, repo_id, messages, bytes
        FROM topic_counter_hours FINAL
        WHERE hour >= ${hourFrom} AND hour < ${hourTo}
      )
      ${keyFilter}
      GROUP BY key
      ${limit}`,
    format: "JSONEachRow",
  });
  const rows = await result.json<Record<string, string | number>>();
  return rows.map((row) => ({
    key: String(row.key),
    repoId: group === "unit_id" && row.repo ? String(row.repo) : null,
    messages: plans.map((_, index) => Number(row[`m${index}`])),
    bytes: plans.map((_, index) => Number(row[`b${index}`])),
  }));
}
