/**
 * Retention on ClickHouse by dropping whole partitions, because ClickHouse 18.16 has no `TTL`.
 * Every table is partitioned by UTC hour (`YYYYMMDDHH`) or UTC day (`YYYYMMDD`), and every
 * cutoff is a whole hour or day. So dropping the partitions that end at or before a cutoff
 * removes exactly the rows before it, as the PostgreSQL store's DELETE does.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type { RetentionResult } from "../store.ts";
import { DAY_MS, HOUR_MS } from "../time.ts";
import { integerLiteral, quoteString } from "./sql.ts";

type PartitionUnit = "hour" | "day";

/** Each table with its partition unit and the retention cutoff that applies to it. */
const TABLES: ReadonlyArray<{
  table: string;
  unit: PartitionUnit;
  cutoff: (result: RetentionResult) => Date | null;
}> = [
  { table: "topic_counter_minutes", unit: "hour", cutoff: (result) => result.minutesBefore },
  { table: "counter_batches", unit: "hour", cutoff: (result) => result.minutesBefore },
  { table: "topic_counter_hours", unit: "day", cutoff: (result) => result.hoursBefore },
  { table: "error_count_minutes", unit: "hour", cutoff: (result) => result.errorsBefore },
  { table: "node_state_minutes", unit: "day", cutoff: (result) => result.longBefore },
  { table: "channel_count_minutes", unit: "day", cutoff: (result) => result.longBefore },
  {
    table: "emqx_topic_counter_minutes",
    unit: "hour",
    cutoff: (result) => result.emqxMinutesBefore,
  },
  { table: "emqx_counter_batches", unit: "hour", cutoff: (result) => result.emqxMinutesBefore },
  { table: "aggregation_space_minutes", unit: "day", cutoff: (result) => result.longBefore },
];

/**
 * Returns the UTC start of a partition from its `system.parts` text (`YYYYMMDD` for day
 * partitions, `YYYYMMDDHH` for hour partitions), or null when the text has another form.
 */
export function partitionStart(partition: string, unit: PartitionUnit): Date | null {
  const match =
    unit === "day"
      ? /^(\d{4})(\d{2})(\d{2})$/.exec(partition)
      : /^(\d{4})(\d{2})(\d{2})(\d{2})$/.exec(partition);
  if (!match) return null;
  const [, year, month, day, hour] = match;
  return new Date(Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour ?? 0)));
}

/**
 * Drops every partition that ends at or before its table's cutoff. Returns the dropped
 * partitions per table; throws when a partition name has an unexpected form, rather than
 * leaving data past its horizon unnoticed.
 */
export async function dropExpiredPartitions(
  client: ClickHouseClient,
  cutoffs: RetentionResult,
): Promise<Record<string, string[]>> {
  const result = await client.query({
    query: `SELECT DISTINCT table, partition FROM system.parts
      WHERE database = currentDatabase() AND active
        AND table IN (${TABLES.map((entry) => quoteString(entry.table)).join(", ")})`,
    format: "JSONEachRow",
  });
  const parts = await result.json<{ table: string; partition: string }>();

  const dropped: Record<string, string[]> = {};
  for (const entry of TABLES) {
    const cutoff = entry.cutoff(cutoffs);
    if (cutoff === null) continue;
    const lengthMs = entry.unit === "hour" ? HOUR_MS : DAY_MS;
    for (const part of parts) {
      if (part.table !== entry.table) continue;
      const start = partitionStart(part.partition, entry.unit);
      if (start === null) {
        throw new Error(
          `Unexpected partition ${JSON.stringify(part.partition)} in ClickHouse table ${entry.table}`,
        );
      }
      if (start.getTime() + lengthMs > cutoff.getTime()) continue;
      await client.command({
        query: `ALTER TABLE ${entry.table} DROP PARTITION ${integerLiteral(Number(part.partition))}`,
      });
      const list = dropped[entry.table] ?? [];
      list.push(part.partition);
      dropped[entry.table] = list;
    }
  }
  return dropped;
}
