/** A migrated database on the benchmark's PostgreSQL, for benchmarks that need no whole node. */
import pg from "pg";
import { createDatabase, createPool, type Database } from "../../src/db/client.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import type { BenchPostgres } from "./harness.ts";

export interface MigratedDatabase {
  url: string;
  pool: pg.Pool;
  db: Database;
  /** Closes the pool. The database stays until PostgreSQL stops. */
  close(): Promise<void>;
}

/**
 * Creates the database `name`, applies `settings` to it with `ALTER DATABASE ... SET` (such as
 * `{ synchronous_commit: "off" }`), and runs every migration. The pool has `poolSize`
 * connections, which must be at least the concurrency of the benchmark.
 */
export async function createMigratedDatabase(
  postgres: BenchPostgres,
  name: string,
  poolSize: number,
  settings: Record<string, string> = {},
): Promise<MigratedDatabase> {
  const url = await postgres.createDatabase(name);
  const admin = new pg.Client({ connectionString: postgres.adminUrl });
  await admin.connect();
  try {
    for (const [setting, value] of Object.entries(settings)) {
      await admin.query(
        `alter database ${pg.escapeIdentifier(name)} set ${pg.escapeIdentifier(setting)} = ${pg.escapeLiteral(value)}`,
      );
    }
  } finally {
    await admin.end();
  }

  const pool = createPool({ url, max: poolSize, applicationName: `bench-${name}` });
  const db = createDatabase(pool);
  await migrateDatabase(db);
  return { url, pool, db, close: () => pool.end() };
}
