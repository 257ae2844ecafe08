/**
 * Aggregation space snapshots on ClickHouse: one row per UTC minute with parallel arrays, the
 * highest version of a minute winning under FINAL.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type {
  AggregationSpaceSnapshot,
  DataPipeTable,
} from "../../metering/state/aggregation-space.ts";
import { floorMinute, fromUnixSeconds, toUnixSeconds } from "../time.ts";
import { nextVersion } from "./counters.ts";

interface SnapshotRow {
  minute: number;
  unit_node_ids: string[];
  unit_node_user_ids: string[];
  unit_node_tables: DataPipeTable[];
  unit_node_rows: number[];
  unit_node_bytes: number[];
  user_ids: string[];
  user_rows: number[];
  user_bytes: number[];
  missing_tables: DataPipeTable[];
}

/**
 * Writes a checked snapshot under its minute with a new version, so it replaces an earlier
 * snapshot of that minute whole. A null owner is stored as the empty string.
 */
export async function writeAggregationSpace(
  client: ClickHouseClient,
  snapshot: AggregationSpaceSnapshot,
): Promise<void> {
  const row: SnapshotRow & { version: number } = {
    minute: toUnixSeconds(floorMinute(snapshot.at)),
    unit_node_ids: snapshot.unitNodes.map((entry) => entry.unitNodeId),
    unit_node_user_ids: snapshot.unitNodes.map((entry) => entry.userId ?? ""),
    unit_node_tables: snapshot.unitNodes.map((entry) => entry.table),
    unit_node_rows: snapshot.unitNodes.map((entry) => entry.rows),
    unit_node_bytes: snapshot.unitNodes.map((entry) => entry.bytes),
    user_ids: snapshot.users.map((entry) => entry.userId ?? ""),
    user_rows: snapshot.users.map((entry) => entry.rows),
    user_bytes: snapshot.users.map((entry) => entry.bytes),
    missing_tables: snapshot.missingTables,
    version: nextVersion(),
  };
  await client.insert({ table: "aggregation_space_minutes", values: [row], format: "JSONEachRow" });
}

export async function latestAggregationSpace(
  client: ClickHouseClient,
): Promise<AggregationSpaceSnapshot | null> {
  const result = await client.query({
    query: `SELECT toUnixTimestamp(minute) AS minute, unit_node_ids, unit_node_user_ids,
        unit_node_tables, unit_node_rows, unit_node_bytes, user_ids, user_rows, user_bytes,
        missing_tables
      FROM aggregation_space_minutes FINAL
      ORDER BY minute DESC
      LIMIT 1`,
    format: "JSONEachRow",
  });
  const [row] = await result.json<SnapshotRow>();
  if (!row) return null;
  return {
    at: fromUnixSeconds(row.minute),
    unitNodes: row.unit_node_ids.map((unitNodeId, index) => ({
      unitNodeId,
      userId: row.unit_node_user_ids[index] || null,
      table: row.unit_node_tables[index] as DataPipeTable,
      rows: Number(row.unit_node_rows[index]),
      bytes: Number(row.unit_node_bytes[index]),
    })),
    users: row.user_ids.map((userId, index) => ({
      userId: userId || null,
      rows: Number(row.user_rows[index]),
      bytes: Number(row.user_bytes[index]),
    })),
    missingTables: row.missing_tables,
  };
}
