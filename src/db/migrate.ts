import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import { getNodeLogger } from "../logging.ts";
import type { Database } from "./client.ts";

const logger = getNodeLogger("db", "migrate");

export const POSTGRES_MIGRATIONS_DIR = fileURLToPath(
  new URL("../../migrations/postgres", import.meta.url),
);

/**
 * SQL that drizzle-kit cannot generate, such as triggers. `npm run db:regenerate` rebuilds the
 * uncommitted migration from the schema alone, so hand-written SQL lives here instead, and every
 * file must be safe to run again.
 */
export const POSTGRES_REPEATABLE_MIGRATIONS_DIR = fileURLToPath(
  new URL("../../migrations/postgres-repeatable", import.meta.url),
);

/** Key of the advisory lock that keeps two starting nodes from running repeatable migrations at once. */
const REPEATABLE_MIGRATIONS_LOCK_KEY = 0x7065_7065;

/**
 * Applies every pending migration under `migrations/postgres` in one transaction per run, then
 * runs every file of `migrations/postgres-repeatable` in name order.
 */
export async function migrateDatabase(db: Database): Promise<void> {
  logger.info("Applying PostgreSQL migrations from {dir}", { dir: POSTGRES_MIGRATIONS_DIR });
  const started = performance.now();
  await migrate(db, {
    migrationsFolder: POSTGRES_MIGRATIONS_DIR,
    migrationsTable: "schema_migrations",
    migrationsSchema: "public",
  });
  await applyRepeatableMigrations(db);
  logger.info("PostgreSQL migrations applied in {ms} ms", {
    ms: Math.round(performance.now() - started),
  });
}

/** Runs each `.sql` file of the repeatable migrations folder in its own transaction. */
async function applyRepeatableMigrations(db: Database): Promise<void> {
  const files = (await readdir(POSTGRES_REPEATABLE_MIGRATIONS_DIR))
    .filter((name) => name.endsWith(".sql"))
    .sort();
  for (const file of files) {
    const text = await readFile(path.join(POSTGRES_REPEATABLE_MIGRATIONS_DIR, file), "utf8");
    await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${REPEATABLE_MIGRATIONS_LOCK_KEY})`);
      // Without parameters pg sends the simple query protocol, which allows several statements.
      await tx.execute(sql.raw(text));
    });
    logger.debug("Applied repeatable migration {file}", { file });
  }
}
