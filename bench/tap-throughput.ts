/**
 * Tap throughput: how many MQTT messages per second the tap counts, against how many the broker
 * delivers to a plain mqtt.js subscriber in the same run (the ceiling), and the tap's memory per
 * 100,000 distinct topics.
 *
 * One Mosquitto broker runs on loopback and the publisher in this process. The tap and the plain
 * subscriber each run alone in their own child process, pinned to one CPU core with `taskset`
 * when it exists. Each round publishes the same messages twice with QoS 0, once per phase, over
 * 1000 attributed UnitNode topics. A phase fails the run unless its consumer counted every
 * message, and the tap phase also checks the sink's total.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { loadConfig } from "../src/config.ts";
import { createDatabase, createPool } from "../src/db/client.ts";
import { migrateDatabase } from "../src/db/migrate.ts";
import { repos, unitNodes, units } from "../src/db/schema/index.ts";
import { TopicCounters } from "../src/metering/tap/counters.ts";
import { startTap } from "../src/metering/tap/tap.ts";
import { classifyTopic } from "../src/metering/topics.ts";
import type { BatchWriteOutcome, CounterBatch } from "../src/timeseries/types.ts";
import { startMosquitto } from "../test/mosquitto.ts";
import { describeMachine, startBenchPostgres } from "./lib/harness.ts";
import { parsePositiveInteger, spread } from "./lib/stats.ts";

const USAGE = `Usage: node bench/tap-throughput.ts [options]

Publishes QoS 0 messages to a local Mosquitto and reports the messages per second that a plain
subscriber and the tap each receive, and the tap's memory per 100,000 distinct topics.

  --messages N   messages per phase and round (default 200000)
  --rounds N     rounds of both phases (default 3)
  --help         print this text
`;

const DOMAIN = "unit.example.com";
const TOPIC_COUNT = 1000;
const PAYLOAD = Buffer.from("21.5;ok;00000000");

/** Result that a consumer child sends at the end of a phase. */
interface PhaseReport {
  received: number;
  seconds: number;
  cpuSeconds: number;
  written?: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: "string" },
      url: { type: "string" },
      database: { type: "string" },
      messages: { type: "string", default: "200000" },
      rounds: { type: "string", default: "3" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.child === "tap" || values.child === "subscriber") {
    await runConsumer(values.child, values.url ?? "", values.database ?? "");
    return;
  }
  if (values.child === "memory") {
    runMemory();
    return;
  }
  await runParent(
    parsePositiveInteger("--messages", values.messages),
    parsePositiveInteger("--rounds", values.rounds),
  );
}

async function runParent(messages: number, rounds: number): Promise<void> {
  const postgres = await startBenchPostgres();
  const mosquitto = await startMosquitto();
  try {
    const databaseUrl = await postgres.createDatabase("tap_bench");
    const topics = await seedTopics(databaseUrl);
    const machine = await describeMachine(databaseUrl);
    const pinned = hasTaskset();
    const publisher = await mqtt.connectAsync(mosquitto.url.href, { protocolVersion: 5 });

    const plainRates: number[] = [];
    const tapRates: number[] = [];
    const plainCpu: number[] = [];
    const tapCpu: number[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      for (const kind of ["subscriber", "tap"] as const) {
        const child = spawnChild(pinned, [
          "--child",
          kind,
          "--url",
          mosquitto.url.href,
          "--database",
          databaseUrl,
        ]);
        await nextMessage(child);
        await publish(publisher, topics, messages);
        child.send({ expect: messages });
        const report = (await nextMessage(child)) as PhaseReport;
        await once(child, "exit");
        if (report.received !== messages || (kind === "tap" && report.written !== messages)) {
          throw new Error(
            `${kind} counted ${report.received} and wrote ${report.written} of ${messages} messages`,
          );
        }
        const rate = report.received / report.seconds;
        (kind === "tap" ? tapRates : plainRates).push(rate);
        // CPU time per message shows how far a consumer is from its own limit when the
        // publisher, not the consumer, sets the pace.
        (kind === "tap" ? tapCpu : plainCpu).push((1e6 * report.cpuSeconds) / report.received);
        console.log(
          `round ${round} ${kind}: ${Math.round(rate)} msg/s, ${report.seconds.toFixed(2)} s, ` +
            `CPU ${Math.round((100 * report.cpuSeconds) / report.seconds)}%`,
        );
      }
    }
    await publisher.endAsync();

    const memoryChild = spawnChild(pinned, ["--child", "memory"], ["--expose-gc"]);
    const memory = (await nextMessage(memoryChild)) as { counters: number; withBatch: number };
    await once(memoryChild, "exit");

    const rate = (value: number) => `${Math.round(value)}`;
    console.log("");
    for (const line of machine) console.log(line);
    // `mosquitto -h` prints its version and exits with status 3.
    const mosquittoHelp = spawnSync("/usr/sbin/mosquitto", ["-h"]).stdout.toString();
    console.log(`mosquitto: ${mosquittoHelp.split("\n")[0]}`);
    console.log(`consumers pinned to one core: ${pinned ? "yes (taskset -c 1)" : "no"}`);
    console.log(
      `load average before the summary: ${loadavg()
        .map((value) => value.toFixed(2))
        .join(" ")}`,
    );
    console.log(`messages per phase: ${messages}, rounds: ${rounds}, topics: ${TOPIC_COUNT}`);
    console.log(`plain subscriber msg/s: ${spread(plainRates, rate)}`);
    console.log(`tap msg/s: ${spread(tapRates, rate)}`);
    const micros = (value: number) => `${value.toFixed(1)} µs`;
    console.log(`plain subscriber CPU per message: ${spread(plainCpu, micros)}`);
    console.log(`tap CPU per message: ${spread(tapCpu, micros)}`);
    console.log(
      `memory per 100,000 topics: counters ${mib(memory.counters)}, ` +
        `counters and the batch being written ${mib(memory.withBatch)}`,
    );
  } finally {
    await mosquitto.dispose();
    await postgres.stop();
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function hasTaskset(): boolean {
  if (cpus().length < 2) return false;
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function spawnChild(pinned: boolean, args: string[], nodeFlags: string[] = []): ChildProcess {
  const script = new URL(import.meta.url).pathname;
  const command = [...nodeFlags, script, ...args];
  const stdio: ["ignore", "inherit", "inherit", "ipc"] = ["ignore", "inherit", "inherit", "ipc"];
  return pinned
    ? spawn("taskset", ["-c", "1", process.execPath, ...command], { stdio })
    : spawn(process.execPath, command, { stdio });
}

async function nextMessage(child: ChildProcess): Promise<unknown> {
  const [message] = await once(child, "message");
  return message;
}

/** Inserts one Repo, 1000 Units and one UnitNode each; returns their backend topics. */
async function seedTopics(databaseUrl: string): Promise<string[]> {
  const pool = createPool({ url: databaseUrl, max: 2 });
  try {
    const db = createDatabase(pool);
    await migrateDatabase(db);
    const [repo] = await db
      .insert(repos)
      .values({
        name: "bench-repo",
        repositoryUrl: "https://git.example.com/r.git",
        platform: "Gitlab",
      })
      .returning({ id: repos.id });
    if (!repo) throw new Error("seeding the Repo returned no row");
    const unitRows = await db
      .insert(units)
      .values(
        Array.from({ length: TOPIC_COUNT }, (_, index) => ({ repoId: repo.id, name: `u${index}` })),
      )
      .returning({ id: units.id });
    const nodeRows = await db
      .insert(unitNodes)
      .values(
        unitRows.map((unit) => ({
          unitId: unit.id,
          type: "Output" as const,
          topicName: "v/pepeunit",
        })),
      )
      .returning({ id: unitNodes.id });
    return nodeRows.map((node) => `${DOMAIN}/${node.id}/pepeunit`);
  } finally {
    await pool.end();
  }
}

/** Publishes `count` QoS 0 messages round-robin over `topics`, waiting for the socket to drain. */
async function publish(client: MqttClient, topics: string[], count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    const topic = topics[index % topics.length] as string;
    if (index % 1000 === 999) {
      await new Promise<void>((resolve, reject) =>
        client.publish(topic, PAYLOAD, { qos: 0 }, (error) => (error ? reject(error) : resolve())),
      );
    } else {
      client.publish(topic, PAYLOAD, { qos: 0 });
    }
  }
}

/** Runs a consumer child: the tap, or a plain subscriber with the same filters and QoS. */
async function runConsumer(kind: "tap" | "subscriber", url: string, databaseUrl: string) {
  let received: () => number;
  let finish: () => Promise<number | undefined>;
  if (kind === "tap") {
    let written = 0;
    const sink = {
      async writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
        for (const row of batch.rows) written += row.messages;
        return "written";
      },
    };
    const pool = createPool({ url: databaseUrl, max: 2 });
    const config = loadConfig({
      PU_NODE_ENV: "test",
      PU_NODE_PEPEUNIT_DOMAIN: DOMAIN,
      PU_NODE_MQTT_URL: url,
      PU_NODE_TAP_ID: `bench-${process.pid}`,
    });
    const tap = await startTap({ config, db: createDatabase(pool), sink });
    await tap.subscribed;
    received = () => tap.stats().messagesReceived;
    finish = async () => {
      await tap.stop();
      await pool.end();
      return written;
    };
  } else {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
    let count = 0;
    client.on("message", () => {
      count += 1;
    });
    await client.subscribeAsync(["+/+", "+/+/pepeunit", `${DOMAIN}/+/+/+/pepeunit`], { qos: 1 });
    received = () => count;
    finish = async () => {
      await client.endAsync();
      return undefined;
    };
  }

  // Polling every 2 ms marks the first and last message to within a few milliseconds.
  let firstAt: number | undefined;
  let cpuAtFirst: NodeJS.CpuUsage | undefined;
  const poll = setInterval(() => {
    if (firstAt === undefined && received() > 0) {
      firstAt = performance.now();
      cpuAtFirst = process.cpuUsage();
    }
  }, 2);
  process.send?.("ready");
  const [request] = (await once(process, "message")) as [{ expect: number }];
  let lastCount = -1;
  let lastChange = performance.now();
  while (received() < request.expect) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    if (received() !== lastCount) {
      lastCount = received();
      lastChange = performance.now();
    } else if (performance.now() - lastChange > 5000) {
      break;
    }
  }
  const endAt = performance.now();
  const cpu = process.cpuUsage(cpuAtFirst);
  clearInterval(poll);
  const report: PhaseReport = {
    received: received(),
    seconds: (endAt - (firstAt ?? endAt)) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  const written = await finish();
  if (written !== undefined) report.written = written;
  process.send?.(report);
  process.disconnect?.();
}

/** Heap used by 100,000 distinct topics in the counters, and with the batch rows built from them. */
function runMemory(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run the memory child with --expose-gc");
  const now = Date.UTC(2026, 11, 4, 12, 0, 30);

  gc();
  const before = process.memoryUsage().heapUsed;
  const counters = new TopicCounters(1_000_000);
  for (let index = 0; index < 100_000; index += 1) {
    const id = `${index.toString(16).padStart(8, "0")}-1e4f-4a6b-8c7d-5e6f7a8b9c0d`;
    counters.add(`${DOMAIN}/${id}/pepeunit`, PAYLOAD.length, now);
  }
  gc();
  const withCounters = process.memoryUsage().heapUsed;

  // The flusher keeps the snapshot and the rows built from it at the same time.
  const snapshot = counters.take();
  const rows = [];
  for (const [minute, counts] of snapshot) {
    for (const [topic, count] of counts) {
      const classification = classifyTopic(topic, DOMAIN);
      rows.push({
        minute: new Date(minute),
        topic,
        domain: classification.domain,
        domainKind: classification.domainKind,
        unitNodeId: classification.unitNodeId ?? null,
        unitId: null,
        repoId: null,
        messages: count.messages,
        bytes: count.bytes,
      });
    }
  }
  gc();
  const withBatch = process.memoryUsage().heapUsed;
  process.send?.({
    counters: withCounters - before,
    withBatch: withBatch - before,
    rows: rows.length + snapshot.size * 0,
  });
  process.disconnect?.();
}

await main();
