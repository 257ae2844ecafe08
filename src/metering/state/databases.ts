/** Storage probes of the node's databases: PostgreSQL and the ClickHouse time-series store. */
import type { ClickHouseClient } from "@clickhouse/client";
import { sql } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";

/** Returns `postgres_database_bytes`: `pg_database_size(current_database())`. */
export async function readPostgresSize(db: DatabaseLike): Promise<Record<string, number>> {
  const result = await db.execute<{ bytes: string }>(
    sql`select pg_database_size(current_database())::text as bytes`,
  );
  const bytes = Number(result.rows[0]?.bytes);
  if (!Number.isFinite(bytes)) throw new Error("pg_database_size returned no number");
  return { postgres_database_bytes: bytes };
}

/** Reads a ClickHouse query as JSON rows; `signal` cancels the HTTP request. */
export async function queryRows<T>(
  client: ClickHouseClient,
  query: string,
  signal: AbortSignal,
): Promise<T[]> {
  const result = await client.query({ query, format: "JSONEachRow", abort_signal: signal });
  return await result.json<T>();
}

/**
 * Returns ClickHouse space figures:
 * - `clickhouse_database_bytes`: bytes on disk of the active parts of the client's database;
 * - `clickhouse_server_bytes`: the same over every database of the server;
 * - `clickhouse_disk_free_bytes` / `clickhouse_disk_total_bytes`: the server's data disk.
 *
 * The disk figures come from `system.disks`. Servers without that table, such as 18.16, offer no
 * SQL view of their free space, so those two values are left out there.
 */
export async function readClickHouseSpace(
  client: ClickHouseClient,
  signal: AbortSignal,
): Promise<Record<string, number>> {
  const [parts] = await queryRows<{
    database_bytes: number | string;
    server_bytes: number | string;
  }>(
    client,
    "SELECT sumIf(bytes_on_disk, database = currentDatabase()) AS database_bytes, " +
      "sum(bytes_on_disk) AS server_bytes FROM system.parts WHERE active",
    signal,
  );
  const values: Record<string, number> = {
    clickhouse_database_bytes: Number(parts?.database_bytes ?? 0),
    clickhouse_server_bytes: Number(parts?.server_bytes ?? 0),
  };

  const [hasDisks] = await queryRows<{ present: number | string }>(
    client,
    "SELECT count() AS present FROM system.tables WHERE database = 'system' AND name = 'disks'",
    signal,
  );
  if (Number(hasDisks?.present) > 0) {
    const [disk] = await queryRows<{ free: number | string; total: number | string }>(
      client,
      "SELECT sum(free_space) AS free, sum(total_space) AS total FROM system.disks",
      signal,
    );
    if (disk !== undefined) {
      values.clickhouse_disk_free_bytes = Number(disk.free);
      values.clickhouse_disk_total_bytes = Number(disk.total);
    }
  }
  return values;
}
