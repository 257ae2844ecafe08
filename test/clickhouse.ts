/**
 * Test ClickHouse: one throwaway `clickhouse-server` per test run, started from the Debian
 * binary with its own configuration, data and logs under a temporary directory, listening on
 * 127.0.0.1 only. Tests create one database each on it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { access, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createClient } from "@clickhouse/client";

export const CLICKHOUSE_BINARY = "/usr/sbin/clickhouse-server";

export interface TestClickHouseServer {
  /** HTTP URL of the server, without a database. */
  url: string;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
  /** Stops the server and keeps its data, to simulate an outage. */
  pause(): Promise<void>;
  /** Starts a paused server again on the same ports and data. */
  resume(): Promise<void>;
}

/** Returns whether the ClickHouse server binary is installed. */
export async function hasClickHouseBinary(): Promise<boolean> {
  try {
    await access(CLICKHOUSE_BINARY);
    return true;
  } catch {
    return false;
  }
}

function serverConfig(directory: string, httpPort: number, tcpPort: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${directory}/log/server.log</log>
    <errorlog>${directory}/log/error.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <path>${directory}/data/</path>
  <tmp_path>${directory}/tmp/</tmp_path>
  <user_files_path>${directory}/user_files/</user_files_path>
  <format_schema_path>${directory}/format_schemas/</format_schema_path>
  <users_config>${directory}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <timezone>UTC</timezone>
</yandex>
`;
}

const USERS_CONFIG = `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`;

/**
 * Starts `clickhouse-server` as the current user on the given free ports and waits until
 * `/ping` responds. Throws with the server's last stderr output when it exits or does not respond
 * within 30 s.
 */
export async function startTestClickHouse(
  httpPort: number,
  tcpPort: number,
): Promise<TestClickHouseServer> {
  const directory = await mkdtemp(path.join(tmpdir(), "pepeunit-node-clickhouse-"));
  for (const name of ["log", "data", "tmp", "user_files", "format_schemas"]) {
    await mkdir(path.join(directory, name), { recursive: true });
  }
  const configFile = path.join(directory, "config.xml");
  await writeFile(configFile, serverConfig(directory, httpPort, tcpPort));
  await writeFile(path.join(directory, "users.xml"), USERS_CONFIG);

  const url = `http://127.0.0.1:${httpPort}`;
  let stderr = "";
  let child: ChildProcess | undefined;
  const launch = async () => {
    const started = spawn(CLICKHOUSE_BINARY, [`--config-file=${configFile}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child = started;
    started.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000);
    });
    await waitForPing(url, started, () => stderr);
  };
  const pause = async () => {
    if (child) await stopProcess(child);
  };
  const stop = async () => {
    await pause();
    await rm(directory, { recursive: true, force: true });
  };

  try {
    await launch();
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop, pause, resume: launch };
}

async function waitForPing(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`clickhouse-server exited with code ${child.exitCode}: ${stderr()}`);
    }
    try {
      const response = await fetch(new URL("/ping", url));
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await delay(50);
  }
  throw new Error(`clickhouse-server did not answer /ping at ${url} within 30 s: ${stderr()}`);
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const killed = await Promise.race([exited.then(() => true), delay(10_000).then(() => false)]);
  if (!killed) {
    child.kill("SIGKILL");
    await exited;
  }
}

export interface TestClickHouseDatabase {
  /** Server URL with the database as its path, as `PU_NODE_CLICKHOUSE_URL` takes it. */
  url: string;
  name: string;
  /** Drops the database. */
  drop(): Promise<void>;
}

/** Creates an empty database named after `label` on the test ClickHouse server. */
export async function createTestClickHouseDatabase(
  serverUrl: string,
  label = "t",
): Promise<TestClickHouseDatabase> {
  const safeLabel = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 30);
  const name = `${safeLabel}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = createClient({ url: serverUrl });
  try {
    await admin.command({ query: `CREATE DATABASE ${name}` });
  } finally {
    await admin.close();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    name,
    drop: async () => {
      const client = createClient({ url: serverUrl });
      try {
        await client.command({ query: `DROP DATABASE IF EXISTS ${name}` });
      } finally {
        await client.close();
      }
    },
  };
}
