/**
 * The load generator of the bridge benchmark, run in a child process: it publishes numbered,
 * timestamped messages on one broker and receives them on another, so one clock measures the
 * end-to-end latency. The parent talks to it over the IPC channel.
 */
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt, { type MqttClient } from "mqtt";
import { summarize } from "./stats.ts";

/** Parent → child: what to publish where. */
export interface LoadRequest {
  publishUrl: string;
  subscribeUrl: string;
  /** Filter that matches every topic in `topics` on the subscribing broker. */
  subscribeFilter: string;
  topics: string[];
  qos: 0 | 1;
  messages: number;
  /** Offered rate in messages per second, or "max" to publish as fast as the client can. */
  rate: number | "max";
}

/** Child → parent at the end of the measured phase. */
export interface LoadReport {
  published: number;
  /** Seconds from the first to the last publish call. */
  publishSeconds: number;
  /** Seconds from the first publish call to the last message received. */
  activeSeconds: number;
  /** Distinct measured messages received. */
  received: number;
  duplicates: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** CPU seconds (user and system) that the child used in the measured phase. */
  cpuSeconds: number;
}

/** Payload: sequence number (uint32), kind (uint32: 0 measured, 1 warm-up), send time (float64 ms). */
const PAYLOAD_BYTES = 16;
const MEASURED = 0;
const WARM_UP = 1;
/** A measured phase ends this long after the last received message when some are missing. */
const IDLE_END_MS = 3000;
const WARM_UP_TIMEOUT_MS = 30_000;

function encode(sequence: number, kind: number): Buffer {
  const payload = Buffer.allocUnsafe(PAYLOAD_BYTES);
  payload.writeUInt32BE(sequence, 0);
  payload.writeUInt32BE(kind, 4);
  payload.writeDoubleBE(performance.now(), 8);
  return payload;
}

/**
 * Runs the child: sends "request" and receives a {@link LoadRequest}, connects, warms up until
 * every topic has carried a message across the bridge, sends "ready", then waits for "start",
 * runs the measured phase and sends a {@link LoadReport}.
 */
export async function runLoadChild(): Promise<void> {
  // A parent that stopped (Ctrl-C) closes the IPC channel, and the open MQTT clients would keep
  // this process alive.
  const exitWithParent = () => process.exit(1);
  process.once("disconnect", exitWithParent);
  const requested = once(process, "message");
  process.send?.("request");
  const [request] = (await requested) as [LoadRequest];
  const { topics, qos, messages } = request;
  const options = { protocolVersion: 4 as const, reconnectPeriod: 0 };
  const subscriber = await mqtt.connectAsync(request.subscribeUrl, options);
  const publisher = await mqtt.connectAsync(request.publishUrl, options);

  const seen = new Uint8Array(messages);
  const latencies = new Float64Array(messages);
  const warmedTopics = new Set<string>();
  let received = 0;
  let duplicates = 0;
  let lastReceivedAt = 0;
  let lastWarmUpAt = 0;
  subscriber.on("message", (topic, payload) => {
    const now = performance.now();
    if (payload.length !== PAYLOAD_BYTES) return;
    if (payload.readUInt32BE(4) === WARM_UP) {
      warmedTopics.add(topic);
      lastWarmUpAt = now;
      return;
    }
    const sequence = payload.readUInt32BE(0);
    if (sequence >= messages) return;
    if (seen[sequence] === 1) {
      duplicates += 1;
      return;
    }
    seen[sequence] = 1;
    latencies[received] = now - payload.readDoubleBE(8);
    received += 1;
    lastReceivedAt = now;
  });
  await subscriber.subscribeAsync(request.subscribeFilter, { qos: 1 });

  await warmUp(publisher, topics, qos, warmedTopics);
  // Late warm-up messages would reach the tap, which starts after "ready".
  while (performance.now() - lastWarmUpAt < 500) await sleep(100);
  const started = once(process, "message");
  process.send?.("ready");
  await started;

  const cpuAtStart = process.cpuUsage();
  const startedAt = performance.now();
  if (request.rate === "max") await publishAtMaxRate(publisher, topics, qos, messages);
  else await publishAtRate(publisher, topics, qos, messages, request.rate);
  const publishedAt = performance.now();

  while (received < messages) {
    const quietSince = Math.max(lastReceivedAt, publishedAt);
    if (performance.now() - quietSince > IDLE_END_MS) break;
    await sleep(5);
  }

  const cpu = process.cpuUsage(cpuAtStart);
  const summary = summarize(Array.from(latencies.subarray(0, received)));
  const report: LoadReport = {
    published: messages,
    publishSeconds: (publishedAt - startedAt) / 1000,
    activeSeconds: ((received > 0 ? lastReceivedAt : publishedAt) - startedAt) / 1000,
    received,
    duplicates,
    latencyP50Ms: summary.p50,
    latencyP99Ms: summary.p99,
    latencyMaxMs: summary.max,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
  await publisher.endAsync();
  await subscriber.endAsync();
  process.off("disconnect", exitWithParent);
  process.send?.(report);
  process.disconnect?.();
}

/**
 * Publishes one warm-up message per topic every 200 ms until each topic has delivered one. The
 * bridge subscribes on the remote broker only after it connects, so early messages go nowhere.
 */
async function warmUp(
  publisher: MqttClient,
  topics: string[],
  qos: 0 | 1,
  warmedTopics: ReadonlySet<string>,
): Promise<void> {
  const deadline = performance.now() + WARM_UP_TIMEOUT_MS;
  while (warmedTopics.size < topics.length) {
    if (performance.now() > deadline) {
      throw new Error(
        `Warm-up timed out after ${WARM_UP_TIMEOUT_MS} ms: ${warmedTopics.size} of ${topics.length} topics crossed the bridge`,
      );
    }
    for (const topic of topics) {
      if (!warmedTopics.has(topic)) publisher.publish(topic, encode(0, WARM_UP), { qos });
    }
    await sleep(200);
  }
}

function publishOne(
  publisher: MqttClient,
  topics: string[],
  qos: 0 | 1,
  sequence: number,
  callback?: (error?: Error) => void,
): void {
  const topic = topics[sequence % topics.length] as string;
  publisher.publish(topic, encode(sequence, MEASURED), { qos }, callback);
}

/**
 * Publishes as fast as the client can. Every 1000th publish waits for its callback (written to
 * the socket for QoS 0, acknowledged for QoS 1), so the client's buffer does not grow unbounded.
 */
async function publishAtMaxRate(
  publisher: MqttClient,
  topics: string[],
  qos: 0 | 1,
  messages: number,
): Promise<void> {
  for (let sequence = 0; sequence < messages; sequence += 1) {
    if (sequence % 1000 === 999) {
      await new Promise<void>((resolve, reject) =>
        publishOne(publisher, topics, qos, sequence, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
    } else {
      publishOne(publisher, topics, qos, sequence);
    }
  }
}

/**
 * Publishes at `rate` messages per second: about every millisecond it sends the messages that
 * are due by then, so the schedule catches up after a late timer.
 */
async function publishAtRate(
  publisher: MqttClient,
  topics: string[],
  qos: 0 | 1,
  messages: number,
  rate: number,
): Promise<void> {
  const startedAt = performance.now();
  let sequence = 0;
  while (sequence < messages) {
    const due = Math.min(messages, Math.floor(((performance.now() - startedAt) * rate) / 1000) + 1);
    while (sequence < due) {
      publishOne(publisher, topics, qos, sequence);
      sequence += 1;
    }
    await sleep(1);
  }
}
