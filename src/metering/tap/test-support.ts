/**
 * Helpers shared by the tap's tests and benchmark: an in-memory counter sink that can fail on
 * demand, a test configuration, a small catalogue, and publishers.
 */
import { connect as connectSocket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { MqttClient } from "mqtt";
import { type Config, loadConfig } from "../../config.ts";
import type { DatabaseLike } from "../../db/client.ts";
import { repos, unitNodes, units } from "../../db/schema/index.ts";
import type {
  BatchWriteOutcome,
  CounterBatch,
  CounterSink,
  TopicCounterRow,
} from "../../timeseries/types.ts";

/**
 * Counter sink that keeps rows in memory and counts each `batchId` once, as the real stores must.
 * `failure` makes writes fail: `before` rejects without storing, `after` stores and then rejects,
 * as a write that timed out after its commit would.
 */
export class MemorySink implements CounterSink {
  readonly rows: TopicCounterRow[] = [];
  readonly batchIds = new Set<string>();
  failure: "none" | "before" | "after" = "none";
  attempts = 0;

  async writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
    this.attempts += 1;
    if (this.failure === "before") throw new Error("sink unavailable (test)");
    let outcome: BatchWriteOutcome = "duplicate";
    if (!this.batchIds.has(batch.batchId)) {
      this.batchIds.add(batch.batchId);
      this.rows.push(...batch.rows);
      outcome = "written";
    }
    if (this.failure === "after") throw new Error("sink timed out after writing (test)");
    return outcome;
  }

  get messages(): number {
    return this.rows.reduce((sum, row) => sum + row.messages, 0);
  }

  /** Sums messages and bytes by the value `key` returns for each row. */
  totalsBy(key: (row: TopicCounterRow) => string | null): Map<string | null, [number, number]> {
    const totals = new Map<string | null, [number, number]>();
    for (const row of this.rows) {
      const group = key(row);
      const total = totals.get(group) ?? [0, 0];
      total[0] += row.messages;
      total[1] += row.bytes;
      totals.set(group, total);
    }
    return totals;
  }
}

export const LOCAL_DOMAIN = "unit.example.com";

/** Returns a test configuration from the real loader; `env` adds or overrides variables. */
export function tapTestConfig(env: Record<string, string>): Config {
  return loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_PEPEUNIT_DOMAIN: LOCAL_DOMAIN,
    PU_NODE_TAP_FLUSH_INTERVAL_MS: "100",
    ...env,
  });
}

export interface TestCatalogue {
  repoId: string;
  unitId: string;
  unitNodeIds: [string, string];
  otherRepoId: string;
  otherUnitId: string;
  otherUnitNodeId: string;
}

/** Inserts two Repos, one Unit each and three UnitNodes; names carry `label` to stay unique. */
export async function seedCatalogue(db: DatabaseLike, label: string): Promise<TestCatalogue> {
  return await db.transaction(async (tx) => {
    const [repo, otherRepo] = await tx
      .insert(repos)
      .values([
        {
          name: `${label}-repo`,
          repositoryUrl: "https://git.example.com/a.git",
          platform: "Gitlab",
        },
        {
          name: `${label}-other`,
          repositoryUrl: "https://git.example.com/b.git",
          platform: "Gitlab",
        },
      ])
      .returning({ id: repos.id });
    if (!repo || !otherRepo) throw new Error("seeding Repos returned no rows");
    const [unit, otherUnit] = await tx
      .insert(units)
      .values([
        { repoId: repo.id, name: `${label}-unit` },
        { repoId: otherRepo.id, name: `${label}-unit2` },
      ])
      .returning({ id: units.id });
    if (!unit || !otherUnit) throw new Error("seeding Units returned no rows");
    const nodes = await tx
      .insert(unitNodes)
      .values([
        { unitId: unit.id, type: "Output", topicName: "temp/pepeunit" },
        { unitId: unit.id, type: "Input", topicName: "fan" },
        { unitId: otherUnit.id, type: "Output", topicName: "light" },
      ])
      .returning({ id: unitNodes.id });
    const [first, second, third] = nodes;
    if (!first || !second || !third) throw new Error("seeding UnitNodes returned no rows");
    return {
      repoId: repo.id,
      unitId: unit.id,
      unitNodeIds: [first.id, second.id],
      otherRepoId: otherRepo.id,
      otherUnitId: otherUnit.id,
      otherUnitNodeId: third.id,
    };
  });
}

/** Waits until `condition` returns true; throws `describe()` after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean,
  describe: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting: ${describe()}`);
    await sleep(20);
  }
}

/** Publishes each message with QoS 1 and waits for every PUBACK; returns how many the broker acknowledged. */
export async function publishAll(
  client: MqttClient,
  messages: Array<{ topic: string; payload: Buffer }>,
): Promise<number> {
  let acknowledged = 0;
  await Promise.all(
    messages.map(async (message) => {
      await client.publishAsync(message.topic, message.payload, { qos: 1 });
      acknowledged += 1;
    }),
  );
  return acknowledged;
}

function encodeRemainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

function packet(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), encodeRemainingLength(body.length), body]);
}

function lengthPrefixed(bytes: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(bytes.length);
  return Buffer.concat([prefix, bytes]);
}

/**
 * Publishes one QoS 1 message whose topic is the raw `topicBytes` over a hand-built MQTT 3.1.1
 * session, which lets a test send a topic that is not valid UTF-8 (mqtt.js only sends strings).
 * Returns `puback` when the broker acknowledged it and `closed` when it closed the connection.
 */
export async function publishRawTopic(
  port: number,
  topicBytes: Buffer,
  payload: Buffer,
): Promise<"puback" | "closed"> {
  const socket = connectSocket(port, "127.0.0.1");
  const connect = packet(
    0x10,
    Buffer.concat([
      lengthPrefixed(Buffer.from("MQTT")),
      Buffer.from([4, 0x02, 0, 30]),
      lengthPrefixed(Buffer.from(`raw-${process.pid}-${Date.now()}`)),
    ]),
  );
  const publish = packet(
    0x32,
    Buffer.concat([lengthPrefixed(topicBytes), Buffer.from([0, 1]), payload]),
  );
  return await new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let sentPublish = false;
    socket.on("error", reject);
    socket.on("close", () => resolve("closed"));
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk]);
      // CONNACK is 0x20 0x02 0x00 0x00; PUBACK is 0x40 0x02 <packet id>.
      if (!sentPublish && received.length >= 4 && received[0] === 0x20) {
        sentPublish = true;
        received = received.subarray(4);
        socket.write(publish);
      }
      if (sentPublish && received.length >= 4 && received[0] === 0x40) {
        socket.end(packet(0xe0, Buffer.alloc(0)));
        resolve("puback");
      }
    });
    socket.write(connect);
  });
}

/**
 * A TCP relay on loopback between MQTT clients and a broker, which can stop passing the clients'
 * bytes upstream and cut every connection: the tap's PUBACKs then never reach the broker, as when
 * a network path fails.
 */
export interface CuttableRelay {
  readonly port: number;
  /** Stops forwarding client bytes to the broker; the broker's bytes still reach the clients. */
  holdUpstream(): void;
  /** Destroys every relayed connection and forwards again for new ones. */
  cut(): void;
  close(): Promise<void>;
}

export async function startRelay(brokerPort: number): Promise<CuttableRelay> {
  const { createServer } = await import("node:net");
  const sockets = new Set<import("node:net").Socket>();
  let holding = false;
  const server = createServer((client) => {
    const upstream = connectSocket(brokerPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (chunk) => {
      if (!holding) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("relay has no port");
  return {
    port: address.port,
    holdUpstream: () => {
      holding = true;
    },
    cut: () => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      holding = false;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
