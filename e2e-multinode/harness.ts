/**
 * Multi-node harness: starts N Pepeunit Nodes as separate processes, each with its own database
 * on one PostgreSQL server, its own port and its own origin on loopback. Scenarios drive the
 * nodes through their REST API and observe them the same way.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { findFreePort } from "../test/ports.ts";
import { dropDatabase, TEMPLATE_DATABASE, withDatabase } from "../test/postgres.ts";

const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));
const NODE_BINARY = process.execPath;

export { findFreePort };

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export class HarnessNode {
  readonly name: string;
  readonly port: number;
  readonly origin: string;
  readonly adminToken: string;
  readonly databaseUrl: string;
  readonly databaseName: string;
  readonly dataDir: string;
  readonly env: Record<string, string>;
  /** Output of every process this node ran, for failure messages. */
  readonly log: string[] = [];
  #process: ChildProcess | undefined;

  constructor(options: {
    name: string;
    port: number;
    databaseUrl: string;
    databaseName: string;
    dataDir: string;
    extraEnv?: Record<string, string>;
    /** Loopback address to listen on and to put in the origin; 127.0.0.1 by default. */
    host?: string;
  }) {
    const host = options.host ?? "127.0.0.1";
    this.name = options.name;
    this.port = options.port;
    this.origin = `http://${host}:${options.port}`;
    this.adminToken = randomBytes(32).toString("hex");
    this.databaseUrl = options.databaseUrl;
    this.databaseName = options.databaseName;
    this.dataDir = options.dataDir;
    this.env = {
      PU_NODE_ENV: "test",
      PU_NODE_ROLE: "all",
      PU_NODE_LISTEN_HOST: host,
      PU_NODE_PORT: String(options.port),
      PU_NODE_ORIGIN: this.origin,
      PU_NODE_PEPEUNIT_DOMAIN: `${options.name}.pepeunit.test`,
      PU_NODE_NAME: `Node ${options.name}`,
      PU_NODE_DATA_DIR: options.dataDir,
      PU_NODE_DATABASE_URL: options.databaseUrl,
      PU_NODE_DATABASE_POOL_SIZE: "8",
      PU_NODE_ADMIN_TOKEN: this.adminToken,
      PU_NODE_ALLOW_PRIVATE_ADDRESS: "true",
      PU_NODE_QUEUE_POLL_INTERVAL_MS: "200",
      PU_NODE_EMBEDDED_MQTT_PORT: "0",
      PU_NODE_LOG_FORMAT: "json",
      PU_NODE_LOG_LEVEL: "info",
      ...options.extraEnv,
    };
  }

  get running(): boolean {
    const child = this.#process;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Starts the node process and waits until `/healthz` responds. `extraEnv` applies to this
   * start only, e.g. a libfaketime clock offset.
   */
  async start(timeoutMs = 30_000, extraEnv: Record<string, string> = {}): Promise<void> {
    if (this.running) throw new Error(`Node ${this.name} is already running`);
    const child = spawn(NODE_BINARY, ["src/main.ts", "start"], {
      cwd: PROJECT_ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        ...this.env,
        ...extraEnv,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#process = child;
    const collect = (chunk: Buffer) => {
      this.log.push(chunk.toString("utf8"));
      if (this.log.length > 2000) this.log.splice(0, this.log.length - 2000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);

    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        throw new Error(`Node ${this.name} exited with ${child.exitCode}:\n${this.tail()}`);
      }
      if (await this.#isReady()) return;
      await sleep(100);
    }
    throw new Error(
      `Node ${this.name} did not respond to /healthz within ${timeoutMs} ms:\n${this.tail()}`,
    );
  }

  /**
   * A web or all-in-one process is ready when `/healthz` responds. A worker serves no HTTP, so
   * it counts as ready once it logs that its queue listener started.
   */
  async #isReady(): Promise<boolean> {
    if (this.env.PU_NODE_ROLE === "worker") {
      return this.log.join("").includes("Started listening on queue");
    }
    try {
      const response = await fetch(`${this.origin}/healthz`);
      return response.ok;
    } catch {
      return false;
    }
  }

  /** Stops the process with `signal` and waits for it to exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills the process at once, as a crash or power loss would. */
  async kill(): Promise<void> {
    await this.stop("SIGKILL");
  }

  tail(lines = 40): string {
    return this.log.join("").split("\n").slice(-lines).join("\n");
  }

  /** Calls the node's REST API with the admin token. */
  async api<T = unknown>(
    method: string,
    pathAndQuery: string,
    body?: unknown,
  ): Promise<ApiResponse<T>> {
    const response = await fetch(`${this.origin}/api/v1${pathAndQuery}`, {
      method,
      headers: {
        authorization: `Bearer ${this.adminToken}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON; keep the text.
    }
    return { status: response.status, body: parsed as T, headers: response.headers };
  }

  /** Runs one query against this node's own database (for assertions on stored state). */
  async query<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.databaseUrl });
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end();
    }
  }
}

export interface Cluster {
  nodes: HarnessNode[];
  stop(): Promise<void>;
}

/** Creates an empty, migrated database for one node and returns its name and URL. */
export async function createNodeDatabase(
  adminUrl: string,
  name: string,
): Promise<{ databaseName: string; databaseUrl: string }> {
  const databaseName = `e2e_${name.replace(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(
      `create database ${pg.escapeIdentifier(databaseName)} template ${pg.escapeIdentifier(TEMPLATE_DATABASE)}`,
    );
  } finally {
    await admin.end();
  }
  return { databaseName, databaseUrl: withDatabase(adminUrl, databaseName) };
}

/** Creates databases and data directories for `names` and starts one process per node. */
export async function startCluster(
  adminUrl: string,
  names: string[],
  extraEnv: Record<string, string> = {},
): Promise<Cluster> {
  const scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-e2e-"));
  const nodes: HarnessNode[] = [];
  for (const name of names) {
    const { databaseName, databaseUrl } = await createNodeDatabase(adminUrl, name);
    nodes.push(
      new HarnessNode({
        name,
        port: await findFreePort(),
        databaseUrl,
        databaseName,
        dataDir: path.join(scratch, name),
        extraEnv,
      }),
    );
  }

  const cluster: Cluster = {
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      for (const node of nodes) await dropDatabase(adminUrl, node.databaseName);
      await rm(scratch, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map((node) => node.start()));
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  description: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for: ${description}${lastError ? ` (last error: ${String(lastError)})` : ""}`,
  );
}
