/**
 * Space that Pepeunit's DataPipe aggregations take in the instance's ClickHouse, per UnitNode and
 * per user. DataPipe writes three tables, all keyed by `unit_node_uuid`: `n_last_entry`
 * (NRecords), `window_entry` (TimeWindow) and `aggregation_entry` (Aggregation). LastValue lives in
 * PostgreSQL and takes no ClickHouse space.
 *
 * Bytes per UnitNode are an estimate: each table's bytes on disk (active parts in
 * `system.parts`) are split among its UnitNodes in proportion to the uncompressed size of their
 * rows. Row size is the fixed width of the table's columns plus the length of the `state`
 * string where `state` is text. This keeps the per-node figures summing to the real on-disk total
 * while giving a node with long text values its larger share.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import { eq, inArray } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import { unitNodes, units } from "../../db/schema/index.ts";
import { queryRows } from "./databases.ts";

export const DATAPIPE_TABLES = ["n_last_entry", "window_entry", "aggregation_entry"] as const;
export type DataPipeTable = (typeof DATAPIPE_TABLES)[number];

/**
 * Fixed bytes per row outside the `state` string, from the column types Pepeunit creates:
 * UUID 16, Enum8 1, DateTime64(3) 8, DateTime 4, UInt32 4, Float64 8.
 */
const FIXED_ROW_BYTES: Record<DataPipeTable, number> = {
  // unit_node_uuid, state_type, create_datetime, max_count, size
  n_last_entry: 16 + 1 + 8 + 4 + 4,
  // unit_node_uuid, state_type, create_datetime, expiration_datetime, size
  window_entry: 16 + 1 + 8 + 4 + 4,
  // unit_node_uuid, state, aggregation_type, time_window_size, three DateTime64(3)
  aggregation_entry: 16 + 8 + 1 + 4 + 3 * 8,
};

/** Tables whose `state` column is a String, so its length adds to the row size. */
const TEXT_STATE: Record<DataPipeTable, boolean> = {
  n_last_entry: true,
  window_entry: true,
  aggregation_entry: false,
};

export interface UnitNodeSpace {
  unitNodeId: string;
  /** Owner of the UnitNode's Unit in the node's catalogue; `null` when unknown there. */
  userId: string | null;
  table: DataPipeTable;
  rows: number;
  /** Estimated bytes on disk (see the module comment). */
  bytes: number;
}

export interface UserSpace {
  /** `null` collects UnitNodes whose owner is not in the catalogue. */
  userId: string | null;
  rows: number;
  bytes: number;
}

export interface AggregationSpaceSnapshot {
  at: Date;
  unitNodes: UnitNodeSpace[];
  users: UserSpace[];
  /** DataPipe tables missing from the database (older Pepeunit, or DataPipe never ran). */
  missingTables: DataPipeTable[];
}

interface NodeRowStats {
  unit_node_id: string;
  rows: number | string;
  state_bytes: number | string;
}

async function existingTables(client: ClickHouseClient, signal: AbortSignal) {
  const rows = await queryRows<{ name: string }>(
    client,
    `SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN (${DATAPIPE_TABLES.map((table) => `'${table}'`).join(", ")})`,
    signal,
  );
  return new Set(rows.map((row) => row.name));
}

async function tableBytesOnDisk(
  client: ClickHouseClient,
  table: DataPipeTable,
  signal: AbortSignal,
): Promise<number> {
  const [row] = await queryRows<{ bytes: number | string }>(
    client,
    `SELECT sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = currentDatabase() AND table = '${table}'`,
    signal,
  );
  return Number(row?.bytes ?? 0);
}

async function nodeRowStats(
  client: ClickHouseClient,
  table: DataPipeTable,
  signal: AbortSignal,
): Promise<NodeRowStats[]> {
  const stateBytes = TEXT_STATE[table] ? "sum(length(state))" : "0";
  return await queryRows<NodeRowStats>(
    client,
    `SELECT toString(unit_node_uuid) AS unit_node_id, count() AS rows, ${stateBytes} AS state_bytes FROM ${table} GROUP BY unit_node_uuid`,
    signal,
  );
}

/** Returns the owner (user id) of each UnitNode id found in the node's catalogue. */
export async function findUnitNodeOwners(
  db: DatabaseLike,
  unitNodeIds: readonly string[],
): Promise<Map<string, string | null>> {
  const owners = new Map<string, string | null>();
  // Chunks keep each statement far below PostgreSQL's 65535 bind parameters.
  for (let start = 0; start < unitNodeIds.length; start += 5000) {
    const chunk = unitNodeIds.slice(start, start + 5000);
    const rows = await db
      .select({ unitNodeId: unitNodes.id, ownerId: units.ownerId })
      .from(unitNodes)
      .innerJoin(units, eq(units.id, unitNodes.unitId))
      .where(inArray(unitNodes.id, chunk));
    for (const row of rows) owners.set(row.unitNodeId, row.ownerId);
  }
  return owners;
}

/**
 * Measures rows and estimated bytes per UnitNode and per user in Pepeunit's ClickHouse. `db` is
 * the node's database, used only to map UnitNodes to their owners.
 */
export async function measureAggregationSpace(
  db: DatabaseLike,
  client: ClickHouseClient,
  signal: AbortSignal,
  now: () => Date = () => new Date(),
): Promise<AggregationSpaceSnapshot> {
  const present = await existingTables(client, signal);
  const unitNodes: UnitNodeSpace[] = [];
  const missingTables: DataPipeTable[] = [];

  for (const table of DATAPIPE_TABLES) {
    if (!present.has(table)) {
      missingTables.push(table);
      continue;
    }
    const bytesOnDisk = await tableBytesOnDisk(client, table, signal);
    const stats = await nodeRowStats(client, table, signal);
    const sizes = stats.map(
      (row) => Number(row.rows) * FIXED_ROW_BYTES[table] + Number(row.state_bytes),
    );
    const totalSize = sizes.reduce((sum, size) => sum + size, 0);
    stats.forEach((row, index) => {
      const share = totalSize > 0 ? (sizes[index] ?? 0) / totalSize : 0;
      unitNodes.push({
        unitNodeId: row.unit_node_id,
        userId: null,
        table,
        rows: Number(row.rows),
        bytes: Math.round(bytesOnDisk * share),
      });
    });
  }

  const owners = await findUnitNodeOwners(db, [
    ...new Set(unitNodes.map((entry) => entry.unitNodeId)),
  ]);
  const users = new Map<string | null, UserSpace>();
  for (const entry of unitNodes) {
    entry.userId = owners.get(entry.unitNodeId) ?? null;
    const user = users.get(entry.userId) ?? { userId: entry.userId, rows: 0, bytes: 0 };
    user.rows += entry.rows;
    user.bytes += entry.bytes;
    users.set(entry.userId, user);
  }
  return { at: now(), unitNodes, users: [...users.values()], missingTables };
}
