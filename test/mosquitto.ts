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

export interface TestMosquittoOptions {
  /**
   * Sets `per_listener_settings true`, so every listener has its own authentication; the main
   * listener then gets its own `allow_anonymous true`.
   */
  perListenerSettings?: boolean;
  /** Lines appended after the main listener, e.g. a second listener or an `include_dir`. */
  extraConfig?: string[];
  /** Ports of listeners in `extraConfig` that each start waits for as well. */
  extraPorts?: number[];
  /**
   * `log_type` values; default `all`, which logs every packet. Benchmarks pass Mosquitto's own
   * default (`error`, `warning`, `notice`, `information`), because a log line per packet costs
   * broker CPU.
   */
  logTypes?: string[];
}

export interface TestMosquitto {
  readonly port: number;
  readonly url: URL;
  /** Stops the broker process; a stopped broker can be started again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops and starts the broker, which loads its configuration and included files again. */
  restart(): Promise<void>;
  /**
   * Sends SIGHUP and waits until the broker logs that it reloads its configuration. The broker
   * rereads password and ACL files right after that line, so callers poll for the effect.
   */
  reload(): Promise<void>;
  /** Stops the broker and removes its directory. */
  dispose(): Promise<void>;
  /** The broker's log, for failure messages. */
  log(): Promise<string>;
}

/** Starts Mosquitto on a free loopback port and waits until it accepts connections. */
export async function startMosquitto(options: TestMosquittoOptions = {}): Promise<TestMosquitto> {
  const directory = await mkdtemp(path.join(tmpdir(), "pepeunit-node-mosquitto-"));
  const port = await findFreePort();
  const configFile = path.join(directory, "mosquitto.conf");
  const logFile = path.join(directory, "mosquitto.log");
  await writeFile(
    configFile,
    [
      `per_listener_settings ${options.perListenerSettings === true}`,
      "allow_anonymous true",
      "persistence false",
      "user root",
      `log_dest file ${logFile}`,
      ...(options.logTypes ?? ["all"]).map((type) => `log_type ${type}`),
      `listener ${port} 127.0.0.1`,
      ...(options.perListenerSettings === true ? ["allow_anonymous true"] : []),
      ...(options.extraConfig ?? []),
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
    for (const listenerPort of [port, ...(options.extraPorts ?? [])]) {
      await waitForPort(listenerPort, 5000);
    }
  }

  async function stop(): Promise<void> {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = once(running, "exit");
    running.kill("SIGTERM");
    await exited;
  }

  const readLog = async () => await readFile(logFile, "utf8").catch(() => "");

  async function reload(): Promise<void> {
    const running = child;
    if (!running) throw new Error("Mosquitto is not running, so it cannot reload");
    const reloadsBefore = countReloads(await readLog());
    running.kill("SIGHUP");
    const deadline = Date.now() + 5000;
    while (countReloads(await readLog()) === reloadsBefore) {
      if (Date.now() > deadline) throw new Error("Mosquitto did not log a reload within 5000 ms");
      await sleep(25);
    }
  }

  await start();
  return {
    port,
    url: new URL(`mqtt://127.0.0.1:${port}`),
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    reload,
    dispose: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
    log: readLog,
  };
}

function countReloads(log: string): number {
  return log.split("Reloading config").length - 1;
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
