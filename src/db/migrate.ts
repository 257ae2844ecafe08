import { fileURLToPath } from "node:url";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import { getNodeLogger } from "../logging.ts";
import type { Database } from "./client.ts";

const logger = getNodeLogger("db", "migrate");

export const POSTGRES_MIGRATIONS_DIR = fileURLToPath(
  new URL("../../migrations/postgres", import.meta.url),
);

/** Applies every pending migration under `migrations/postgres` in one transaction per run. */
export async function migrateDatabase(db: Database): Promise<void> {
  logger.info("Applying PostgreSQL migrations from {dir}", { dir: POSTGRES_MIGRATIONS_DIR });
  const started = performance.now();
  await migrate(db, {
    migrationsFolder: POSTGRES_MIGRATIONS_DIR,
    migrationsTable: "schema_migrations",
    migrationsSchema: "public",
  });
  logger.info("PostgreSQL migrations applied in {ms} ms", {
    ms: Math.round(performance.now() - started),
  });
}
