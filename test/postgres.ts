/**
 * Test PostgreSQL: one real server per test run, one fresh database per test file (or per
 * harness node), created from a template that already has every migration applied.
 *
 * The server is `PU_NODE_TEST_DATABASE_URL` (a URL whose user may create databases) when set,
 * otherwise an embedded PostgreSQL started by the global setup.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { createDatabase, createPool, type Database } from "../src/db/client.ts";

export const TEMPLATE_DATABASE = "pepeunit_node_template";

export interface TestDatabase {
  url: string;
  name: string;
  pool: pg.Pool;
  db: Database;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

/** Returns `adminUrl` with its database replaced by `name`. */
export function withDatabase(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.href;
}

/** Creates an empty, migrated database named after `label` on the test server. */
export async function createTestDatabase(adminUrl: string, label = "t"): Promise<TestDatabase> {
  const safeLabel = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 30);
  const name = `${safeLabel}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(
      `create database ${pg.escapeIdentifier(name)} template ${pg.escapeIdentifier(TEMPLATE_DATABASE)}`,
    );
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const pool = createPool({ url, max: 10, applicationName: `test-${safeLabel}` });
  return {
    url,
    name,
    pool,
    db: createDatabase(pool),
    drop: async () => {
      await pool.end();
      await dropDatabase(adminUrl, name);
    },
  };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  } finally {
    await admin.end();
  }
}
