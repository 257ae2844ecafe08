/**
 * Vitest global setup: starts the test PostgreSQL server and builds the migrated template
 * database that every test database is copied from. It also starts one throwaway ClickHouse
 * server, unless `PU_NODE_TEST_CLICKHOUSE_URL` names one or the binary is missing.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { createDatabase, createPool } from "../src/db/client.ts";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { hasClickHouseBinary, startTestClickHouse } from "./clickhouse.ts";
import { findFreePort } from "./ports.ts";
import { dropDatabase, TEMPLATE_DATABASE, withDatabase } from "./postgres.ts";

declare module "vitest" {
  export interface ProvidedContext {
    postgresAdminUrl: string;
    /** HTTP URL of the test ClickHouse server, or "" when none is available. */
    clickhouseUrl: string;
  }
}

export { findFreePort };

export default async function setup(project: TestProject) {
  let adminUrl = process.env.PU_NODE_TEST_DATABASE_URL;
  let stopServer: (() => Promise<void>) | undefined;
  let scratch: string | undefined;

  if (!adminUrl) {
    scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-node-test-"));
    const server = await startEmbeddedPostgres({
      directory: path.join(scratch, "postgres"),
      port: await findFreePort(),
      ephemeral: true,
      databaseName: "postgres",
    });
    adminUrl = server.adminUrl;
    stopServer = server.stop;
  }

  await dropDatabase(adminUrl, TEMPLATE_DATABASE);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${TEMPLATE_DATABASE}`);
  await admin.end();
  const pool = createPool({ url: withDatabase(adminUrl, TEMPLATE_DATABASE), max: 1 });
  await migrateDatabase(createDatabase(pool));
  await pool.end();

  project.provide("postgresAdminUrl", adminUrl);

  let clickhouseUrl = process.env.PU_NODE_TEST_CLICKHOUSE_URL ?? "";
  let stopClickHouse: (() => Promise<void>) | undefined;
  if (!clickhouseUrl && (await hasClickHouseBinary())) {
    const clickhouse = await startTestClickHouse(await findFreePort(), await findFreePort());
    clickhouseUrl = clickhouse.url;
    stopClickHouse = clickhouse.stop;
  }
  project.provide("clickhouseUrl", clickhouseUrl);

  return async () => {
    await stopClickHouse?.();
    await stopServer?.();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  };
}
