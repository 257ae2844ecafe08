/**
 * A Mosquitto broker set up the way the node's Mosquitto bridge driver expects on a server. It
 * has a local listener for the instance and a peer listener with the password and ACL files that
 * the node writes. Its `include_dir` contains the node's bridge file, and shell commands restart and
 * reload it. A small shell loop restarts the broker whenever it exits, as systemd would, until
 * `dispose()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findFreePort } from "../test/ports.ts";

const BINARY = process.env.PU_NODE_TEST_MOSQUITTO ?? "/usr/sbin/mosquitto";

export interface MosquittoService {
  readonly host: string;
  /** Listener for the instance's own clients (anonymous). */
  readonly localPort: number;
  /** Listener for other instances' bridges (password and ACL files of the node). */
  readonly peerPort: number;
  /** `PU_NODE_MOSQUITTO_*` settings for the node that owns this broker. */
  readonly nodeEnv: Record<string, string>;
  log(): Promise<string>;
  dispose(): Promise<void>;
}

export async function startMosquittoService(host: string): Promise<MosquittoService> {
  const directory = await mkdtemp(path.join(tmpdir(), "pepeunit-e2e-mosquitto-"));
  const includeDir = path.join(directory, "bridges.d");
  await mkdir(includeDir);
  const files = {
    config: path.join(directory, "mosquitto.conf"),
    log: path.join(directory, "mosquitto.log"),
    pid: path.join(directory, "mosquitto.pid"),
    stop: path.join(directory, "stop"),
    passwords: path.join(directory, "peers.passwd"),
    acl: path.join(directory, "peers.acl"),
    bridges: path.join(includeDir, "pepeunit-node.conf"),
  };
  // Mosquitto refuses to start without its password and ACL files; the node fills them.
  await writeFile(files.passwords, "");
  await writeFile(files.acl, "");
  const localPort = await findFreePort();
  const peerPort = await findFreePort();
  await writeFile(
    files.config,
    [
      "per_listener_settings true",
      "persistence false",
      "user root",
      `log_dest file ${files.log}`,
      "log_type all",
      `listener ${localPort} ${host}`,
      "allow_anonymous true",
      `listener ${peerPort} ${host}`,
      "allow_anonymous false",
      `password_file ${files.passwords}`,
      `acl_file ${files.acl}`,
      `include_dir ${includeDir}`,
      "",
    ].join("\n"),
  );

  const loop = [
    `while [ ! -e '${files.stop}' ]; do`,
    `  '${BINARY}' -c '${files.config}' & echo $! > '${files.pid}'; wait $!; sleep 0.1;`,
    "done",
  ].join("\n");
  const supervisor: ChildProcess = spawn("/bin/sh", ["-c", loop], {
    stdio: "ignore",
    detached: true,
  });
  await waitForPort(host, localPort);
  await waitForPort(host, peerPort);

  const waitForLocal = `i=0; while [ $i -lt 100 ] && ! (echo > /dev/tcp/${host}/${localPort}) 2>/dev/null; do sleep 0.05; i=$((i+1)); done`;
  return {
    host,
    localPort,
    peerPort,
    nodeEnv: {
      PU_NODE_BRIDGE_DRIVER: "mosquitto",
      PU_NODE_MQTT_URL: `mqtt://${host}:${localPort}`,
      PU_NODE_MOSQUITTO_BRIDGE_FILE: files.bridges,
      PU_NODE_MOSQUITTO_PASSWORD_FILE: files.passwords,
      PU_NODE_MOSQUITTO_ACL_FILE: files.acl,
      // The loop starts the broker again; the command returns once it listens.
      PU_NODE_MOSQUITTO_RESTART_COMMAND: `kill $(cat '${files.pid}') && sleep 0.3 && bash -c '${waitForLocal}'`,
      PU_NODE_MOSQUITTO_RELOAD_COMMAND: `kill -HUP $(cat '${files.pid}')`,
    },
    log: async () => await readFile(files.log, "utf8").catch(() => ""),
    dispose: async () => {
      await writeFile(files.stop, "");
      const pid = (await readFile(files.pid, "utf8").catch(() => "")).trim();
      if (pid) process.kill(Number(pid), "SIGTERM");
      if (supervisor.pid) {
        try {
          process.kill(-supervisor.pid, "SIGTERM");
        } catch {
          // Already gone.
        }
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function waitForPort(host: string, port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host);
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`Mosquitto did not listen on ${host}:${port} within ${timeoutMs} ms`);
}
