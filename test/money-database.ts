/**
 * The database of a money test file. The unit run (`vitest.money-unit.config.ts`) sets
 * `PU_NODE_TEST_DATABASE_BACKEND=pglite`, so the same file runs in process against PGlite
 * (PostgreSQL compiled to WebAssembly) with every migration applied. Every other run gives it
 * a fresh database on the test PostgreSQL server.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { drizzle, type PgliteDatabase } from "drizzle-orm/pglite";
import { migrate } from "drizzle-orm/pglite/migrator";
import { inject } from "vitest";
import type { Database } from "../src/db/client.ts";
import {
  migrateDatabase,
  POSTGRES_MIGRATIONS_DIR,
  POSTGRES_REPEATABLE_MIGRATIONS_DIR,
} from "../src/db/migrate.ts";
import * as schema from "../src/db/schema/index.ts";
import { createTestDatabase } from "./postgres.ts";

export type MoneyTestBackend = "pglite" | "postgres";

export interface MoneyTestDatabase {
  backend: MoneyTestBackend;
  db: Database;
  /** Applies the migrations again, as a node does at every start. */
  migrate(): Promise<void>;
  /** Closes the database and removes it. */
  close(): Promise<void>;
}

/** Returns the backend this run selected through `PU_NODE_TEST_DATABASE_BACKEND`. */
export function moneyTestBackend(): MoneyTestBackend {
  const value = process.env.PU_NODE_TEST_DATABASE_BACKEND ?? "postgres";
  if (value !== "pglite" && value !== "postgres") {
    throw new Error(
      `Invalid PU_NODE_TEST_DATABASE_BACKEND ${JSON.stringify(value)}: expected pglite or postgres`,
    );
  }
  return value;
}

/** Opens an empty, migrated database for one test file on the selected backend. */
export async function openMoneyTestDatabase(label: string): Promise<MoneyTestDatabase> {
  if (moneyTestBackend() === "postgres") {
    const database = await createTestDatabase(inject("postgresAdminUrl"), label);
    return {
      backend: "postgres",
      db: database.db,
      migrate: () => migrateDatabase(database.db),
      close: database.drop,
    };
  }
  const client = await PGlite.create();
  const pglite = drizzle({ client, schema });
  await migratePglite(client, pglite);
  // The money code is written against drizzle's node-postgres handle. The PGlite handle has
  // the same query builder and transaction API, and its results carry `rows` and `rowCount`.
  return {
    backend: "pglite",
    db: pglite as unknown as Database,
    migrate: () => migratePglite(client, pglite),
    close: async () => {
      await client.close();
    },
  };
}

/**
 * Applies the drizzle migrations and the repeatable SQL, as `migrateDatabase` does on a server.
 * PGlite runs a file of several statements only through `exec`.
 */
async function migratePglite(client: PGlite, pglite: PgliteDatabase<typeof schema>): Promise<void> {
  await migrate(pglite, {
    migrationsFolder: POSTGRES_MIGRATIONS_DIR,
    migrationsTable: "schema_migrations",
    migrationsSchema: "public",
  });
  const files = (await readdir(POSTGRES_REPEATABLE_MIGRATIONS_DIR)).filter((name) =>
    name.endsWith(".sql"),
  );
  for (const file of files.sort()) {
    await client.exec(await readFile(path.join(POSTGRES_REPEATABLE_MIGRATIONS_DIR, file), "utf8"));
  }
}
