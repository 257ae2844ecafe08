/**
 * A throwaway Mosquitto broker for tests: the Debian binary (`/usr/sbin/mosquitto`, or
 * `PU_NODE_TEST_MOSQUITTO`), its own config in a temporary directory, a free port on 127.0.0.1,
 * no persistence and anonymous access. CI installs the `mosquitto` package.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findFreePort } from "./global-setup.ts";

// Read here rather than in src/config.ts, because tests only use it to find the binary.
const BINARY = process.env.PU_NODE_TEST_MOSQUITTO ?? "/usr/sbin/mosquitto";

/** Returns why Mosquitto cannot run here, or undefined when it can. */
export function mosquittoMissingReason(): string | undefined {
  try {
    accessSync(BINARY, constants.X_OK);
    return undefined;
  } catch {
    return `Mosquitto not found at ${BINARY}; install the mosquitto package or set PU_NODE_TEST_MOSQUITTO`;
  }
}

export interface TestMosquitto {
  readonly port: number;
  readonly url: URL;
  /** Stops the broker process; a stopped broker can be started again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the broker and removes its directory. */
  dispose(): Promise<void>;
  /** The broker's log, for failure messages. */
  log(): Promise<string>;
}

/** Starts Mosquitto on a free loopback port and waits until it accepts connections. */
export async function startMosquitto(): Promise<TestMosquitto> {
  const directory = await mkdtemp(path.join(tmpdir(), "pepeunit-node-mosquitto-"));
  const port = await findFreePort();
  const configFile = path.join(directory, "mosquitto.conf");
  const logFile = path.join(directory, "mosquitto.log");
  await writeFile(
    configFile,
    [
      "per_listener_settings false",
      "allow_anonymous true",
      "persistence false",
      "user root",
      `log_dest file ${logFile}`,
      "log_type all",
      `listener ${port} 127.0.0.1`,
      "",
    ].join("\n"),
  );

  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    if (child) return;
    const started = spawn(BINARY, ["-c", configFile], { stdio: "ignore" });
    child = started;
    started.once("exit", () => {
      if (child === started) child = undefined;
    });
    await waitForPort(port, 5000);
  }

  async function stop(): Promise<void> {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = once(running, "exit");
    running.kill("SIGTERM");
    await exited;
  }

  await start();
  return {
    port,
    url: new URL(`mqtt://127.0.0.1:${port}`),
    start,
    stop,
    dispose: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
    log: async () => await readFile(logFile, "utf8").catch(() => ""),
  };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(25);
  }
  throw new Error(`Mosquitto did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}
