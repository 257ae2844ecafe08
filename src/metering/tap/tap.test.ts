import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { findFreePort } from "../../../test/global-setup.ts";
import {
  mosquittoMissingReason,
  startMosquitto,
  type TestMosquitto,
} from "../../../test/mosquitto.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { EmbeddedMqttBroker } from "../embedded-broker.ts";
import { PEPEUNIT_MAX_PAYLOAD_BYTES } from "../topics.ts";
import { startTap, type Tap } from "./tap.ts";
import {
  LOCAL_DOMAIN,
  MemorySink,
  publishAll,
  publishRawTopic,
  seedCatalogue,
  startRelay,
  type TestCatalogue,
  tapTestConfig,
  waitUntil,
} from "./test-support.ts";

const FOREIGN = "other.example.org";
const UNKNOWN = "0b6c7a1e-2d3f-4e5a-8b9c-1d2e3f4a5b6c";

let database: TestDatabase;
let catalogue: TestCatalogue;
let mosquitto: TestMosquitto | undefined;
const missingMosquitto = mosquittoMissingReason();

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "metering-tap");
  catalogue = await seedCatalogue(database.db, "tap");
  if (!missingMosquitto) mosquitto = await startMosquitto();
});

afterAll(async () => {
  await mosquitto?.dispose();
  await database.drop();
});

interface Expected {
  topic: string;
  count: number;
  size: number;
  domain: string;
  unitNodeId: string | null;
  unitId: string | null;
  repoId: string | null;
}

/** Returns one entry per topic form and bad input that the tap's filters deliver. */
function expectedTraffic(): Expected[] {
  const [node, fan] = catalogue.unitNodeIds;
  const { unitId, repoId, otherUnitId, otherRepoId, otherUnitNodeId } = catalogue;
  const local = { domain: LOCAL_DOMAIN };
  const none = { unitNodeId: null, unitId: null, repoId: null };
  return [
    {
      topic: `${LOCAL_DOMAIN}/${node}`,
      count: 40,
      size: 10,
      ...local,
      unitNodeId: node,
      unitId,
      repoId,
    },
    {
      topic: `${LOCAL_DOMAIN}/${node}/pepeunit`,
      count: 30,
      size: 7,
      ...local,
      unitNodeId: node,
      unitId,
      repoId,
    },
    {
      topic: `${LOCAL_DOMAIN}/${fan}`,
      count: 25,
      size: 3,
      ...local,
      unitNodeId: fan,
      unitId,
      repoId,
    },
    {
      topic: `${LOCAL_DOMAIN}/${otherUnitNodeId}/pepeunit`,
      count: 20,
      size: 5,
      ...local,
      unitNodeId: otherUnitNodeId,
      unitId: otherUnitId,
      repoId: otherRepoId,
    },
    {
      topic: `${LOCAL_DOMAIN}/output_base_topic/${unitId}/state/pepeunit`,
      count: 15,
      size: 100,
      ...local,
      unitNodeId: null,
      unitId,
      repoId,
    },
    {
      topic: `${LOCAL_DOMAIN}/input_base_topic/${otherUnitId}/update/pepeunit`,
      count: 5,
      size: 60,
      ...local,
      unitNodeId: null,
      unitId: otherUnitId,
      repoId: otherRepoId,
    },
    // Upper-case ids are attributed to the node they name.
    {
      topic: `${LOCAL_DOMAIN}/${node.toUpperCase()}`,
      count: 4,
      size: 2,
      ...local,
      unitNodeId: node,
      unitId,
      repoId,
    },
    { topic: `${LOCAL_DOMAIN}/${UNKNOWN}`, count: 12, size: 1, ...local, ...none },
    {
      topic: `${LOCAL_DOMAIN}/output_base_topic/${UNKNOWN}/log/pepeunit`,
      count: 3,
      size: 9,
      ...local,
      ...none,
    },
    { topic: `${LOCAL_DOMAIN}/current_temp`, count: 6, size: 4, ...local, ...none },
    { topic: `${LOCAL_DOMAIN}//pepeunit`, count: 2, size: 4, ...local, ...none },
    // A foreign topic that names a local node still has no local attribution.
    { topic: `${FOREIGN}/${node}/pepeunit`, count: 11, size: 8, domain: FOREIGN, ...none },
    { topic: `${FOREIGN}/${UNKNOWN}`, count: 9, size: 8, domain: FOREIGN, ...none },
    { topic: `/${node}`, count: 2, size: 1, domain: "", ...none },
    { topic: `Bad_Domain/${node}/pepeunit`, count: 3, size: 1, domain: "", ...none },
    {
      topic: `${LOCAL_DOMAIN}/${fan}/pepeunit`,
      count: 2,
      size: PEPEUNIT_MAX_PAYLOAD_BYTES + 1,
      ...local,
      unitNodeId: fan,
      unitId,
      repoId,
    },
  ];
}

/** Topics outside the tap's filters: never delivered, so never counted. */
const UNDELIVERED = [
  `${LOCAL_DOMAIN}/output_base_topic/${UNKNOWN}/pepeunit`,
  `${LOCAL_DOMAIN}/output_base_topic/${UNKNOWN}/state/pepeunit/extra`,
  `${LOCAL_DOMAIN}/${UNKNOWN}/state`,
  FOREIGN,
];

function messagesOf(traffic: Expected[]) {
  const messages: Array<{ topic: string; payload: Buffer }> = [];
  for (const entry of traffic) {
    for (let index = 0; index < entry.count; index += 1) {
      messages.push({ topic: entry.topic, payload: Buffer.alloc(entry.size, 120) });
    }
  }
  for (const topic of UNDELIVERED) messages.push({ topic, payload: Buffer.from("x") });
  return messages;
}

function sumBy(traffic: Expected[], key: (entry: Expected) => string | null) {
  const totals = new Map<string | null, [number, number]>();
  for (const entry of traffic) {
    const total = totals.get(key(entry)) ?? [0, 0];
    total[0] += entry.count;
    total[1] += entry.count * entry.size;
    totals.set(key(entry), total);
  }
  return totals;
}

interface BrokerCase {
  name: string;
  skip: string | undefined;
  env: () => Promise<{ env: Record<string, string>; url: URL; stop: () => Promise<void> }>;
  protocolVersion: 4 | 5;
}

const brokers: BrokerCase[] = [
  {
    name: "aedes (embedded)",
    skip: undefined,
    protocolVersion: 4,
    env: async () => {
      const broker = new EmbeddedMqttBroker({ port: await findFreePort() });
      await broker.start();
      return {
        env: { PU_NODE_EMBEDDED_MQTT_PORT: String(broker.port) },
        url: broker.url,
        stop: () => broker.stop(),
      };
    },
  },
  {
    name: "Mosquitto",
    skip: missingMosquitto,
    protocolVersion: 5,
    env: async () => {
      if (!mosquitto) throw new Error("Mosquitto is not running");
      return {
        env: { PU_NODE_MQTT_URL: mosquitto.url.href },
        url: mosquitto.url,
        stop: async () => {},
      };
    },
  },
];

async function connectPublisher(url: URL, protocolVersion: 4 | 5): Promise<MqttClient> {
  return await mqtt.connectAsync(url.href, { protocolVersion, reconnectPeriod: 200 });
}

for (const broker of brokers) {
  describe.skipIf(broker.skip !== undefined)(`tap on ${broker.name} ${broker.skip ?? ""}`, () => {
    it("counts every topic form exactly", async () => {
      const setup = await broker.env();
      const sink = new MemorySink();
      const config = tapTestConfig({
        ...setup.env,
        PU_NODE_TAP_ID: `exact-${broker.protocolVersion}`,
      });
      const tap = await startTap({ config, db: database.db, sink });
      const publisher = await connectPublisher(setup.url, broker.protocolVersion);
      try {
        await tap.subscribed;
        const traffic = expectedTraffic();
        const messages = messagesOf(traffic);
        expect(await publishAll(publisher, messages)).toBe(messages.length);
        const total = traffic.reduce((sum, entry) => sum + entry.count, 0);
        await waitUntil(
          () => sink.messages >= total,
          () => `${sink.messages} of ${total} counted`,
        );
        await tap.stop();

        const byTopic = sink.totalsBy((row) => row.topic);
        expect(byTopic).toEqual(sumBy(traffic, (entry) => entry.topic));
        expect(sink.totalsBy((row) => row.unitNodeId)).toEqual(
          sumBy(traffic, (entry) => entry.unitNodeId),
        );
        expect(sink.totalsBy((row) => row.unitId)).toEqual(sumBy(traffic, (entry) => entry.unitId));
        expect(sink.totalsBy((row) => row.repoId)).toEqual(sumBy(traffic, (entry) => entry.repoId));
        expect(sink.totalsBy((row) => row.domain)).toEqual(sumBy(traffic, (entry) => entry.domain));
        expect(sink.totalsBy((row) => row.domainKind)).toEqual(
          sumBy(traffic, (entry) => (entry.domain === LOCAL_DOMAIN ? "local" : "foreign")),
        );
        for (const row of sink.rows) {
          expect(row.minute.getTime() % 60_000).toBe(0);
        }
        expect(tap.stats().oversizedMessages).toBe(2);
        expect(tap.stats().messagesWritten).toBe(total);
      } finally {
        await tap.stop();
        await publisher.endAsync();
        await setup.stop();
      }
    });

    it("keeps counts while the sink fails", async () => {
      const setup = await broker.env();
      const sink = new MemorySink();
      const config = tapTestConfig({
        ...setup.env,
        PU_NODE_TAP_ID: `failing-${broker.protocolVersion}`,
      });
      const tap = await startTap({ config, db: database.db, sink, maxBackoffMs: 200 });
      const publisher = await connectPublisher(setup.url, broker.protocolVersion);
      try {
        await tap.subscribed;
        const topic = `${LOCAL_DOMAIN}/${catalogue.unitNodeIds[0]}`;
        const batch = (count: number) =>
          Array.from({ length: count }, () => ({ topic, payload: Buffer.from("12.5") }));

        sink.failure = "before";
        await publishAll(publisher, batch(300));
        await waitUntil(
          () => tap.stats().failedWrites >= 3,
          () => "three failed writes",
        );
        // A write that lands but reports a failure must not count twice when it is retried.
        sink.failure = "after";
        await publishAll(publisher, batch(200));
        await waitUntil(
          () => sink.messages >= 300,
          () => `${sink.messages} stored`,
        );
        await waitUntil(
          () => tap.stats().failedWrites >= 5,
          () => "two more failed writes",
        );
        sink.failure = "none";
        await publishAll(publisher, batch(100));
        await waitUntil(
          () => tap.stats().messagesWritten === 600,
          () => `${sink.messages} of 600`,
        );

        expect(sink.messages).toBe(600);
        expect(tap.stats().duplicateBatches).toBeGreaterThanOrEqual(1);
      } finally {
        await tap.stop();
        await publisher.endAsync();
        await setup.stop();
      }
    });

    it("writes the last counts on stop", async () => {
      const setup = await broker.env();
      const sink = new MemorySink();
      const config = tapTestConfig({
        ...setup.env,
        PU_NODE_TAP_ID: `stop-${broker.protocolVersion}`,
        PU_NODE_TAP_FLUSH_INTERVAL_MS: "600000",
      });
      const tap = await startTap({ config, db: database.db, sink });
      const publisher = await connectPublisher(setup.url, broker.protocolVersion);
      try {
        await tap.subscribed;
        const topic = `${FOREIGN}/${UNKNOWN}/pepeunit`;
        await publishAll(
          publisher,
          Array.from({ length: 250 }, () => ({ topic, payload: Buffer.from("1") })),
        );
        await waitUntil(
          () => tap.stats().messagesReceived === 250,
          () => "250 received",
        );
        expect(sink.messages).toBe(0);
        await tap.stop();
        expect(sink.messages).toBe(250);
      } finally {
        await tap.stop();
        await publisher.endAsync();
        await setup.stop();
      }
    });
  });
}

describe("tap stop with a failing sink", () => {
  it("returns and keeps the count in stats", async () => {
    const broker = new EmbeddedMqttBroker({ port: 0 });
    await broker.start();
    const sink = new MemorySink();
    sink.failure = "before";
    const config = tapTestConfig({
      PU_NODE_EMBEDDED_MQTT_PORT: String(broker.port),
      PU_NODE_TAP_ID: "stop-failing",
      // No periodic flush, so the flushes during stop build one batch of all 40 messages.
      PU_NODE_TAP_FLUSH_INTERVAL_MS: "600000",
    });
    const tap = await startTap({ config, db: database.db, sink, shutdownFlushAttempts: 2 });
    const publisher = await connectPublisher(broker.url, 4);
    try {
      await tap.subscribed;
      const topic = `${LOCAL_DOMAIN}/${UNKNOWN}`;
      await publishAll(
        publisher,
        Array.from({ length: 40 }, () => ({ topic, payload: Buffer.from("1") })),
      );
      await waitUntil(
        () => tap.stats().messagesReceived === 40,
        () => "40 received",
      );
      await tap.stop();

      expect(sink.messages).toBe(0);
      expect(tap.stats().messagesWritten).toBe(0);
      expect(tap.stats().pendingMessages).toBe(40);
    } finally {
      await tap.stop();
      await publisher.endAsync();
      await broker.stop();
    }
  });
});

describe("tap and invalid UTF-8 topics", () => {
  it("counts the decoded topic on aedes", async () => {
    const broker = new EmbeddedMqttBroker({ port: 0 });
    await broker.start();
    const sink = new MemorySink();
    const config = tapTestConfig({
      PU_NODE_EMBEDDED_MQTT_PORT: String(broker.port),
      PU_NODE_TAP_ID: "utf8",
    });
    const tap: Tap = await startTap({ config, db: database.db, sink });
    try {
      await tap.subscribed;
      const topic = Buffer.concat([Buffer.from(`${LOCAL_DOMAIN}/`), Buffer.from([0xff, 0xfe])]);
      expect(await publishRawTopic(broker.port, topic, Buffer.from("abc"))).toBe("puback");
      await waitUntil(
        () => sink.messages === 1,
        () => "one message counted",
      );
      expect(sink.rows[0]?.topic).toBe(`${LOCAL_DOMAIN}/\uFFFD\uFFFD`);
      expect(sink.rows[0]?.domain).toBe(LOCAL_DOMAIN);
      expect(sink.rows[0]?.unitNodeId).toBeNull();
    } finally {
      await tap.stop();
      await broker.stop();
    }
  });

  it.skipIf(missingMosquitto !== undefined)(
    `is rejected by Mosquitto ${missingMosquitto ?? ""}`,
    async () => {
      if (!mosquitto) throw new Error("Mosquitto is not running");
      const topic = Buffer.concat([Buffer.from(`${LOCAL_DOMAIN}/`), Buffer.from([0xff, 0xfe])]);
      expect(await publishRawTopic(mosquitto.port, topic, Buffer.from("abc"))).toBe("closed");
    },
  );
});

describe.skipIf(missingMosquitto !== undefined)(
  `taps on Mosquitto ${missingMosquitto ?? ""}`,
  () => {
    it("share the stream and count each message once", async () => {
      if (!mosquitto) throw new Error("Mosquitto is not running");
      const sink = new MemorySink();
      const taps = await Promise.all(
        ["shared-a", "shared-b"].map((tapId) =>
          startTap({
            config: tapTestConfig({
              PU_NODE_MQTT_URL: mosquitto?.url.href ?? "",
              PU_NODE_TAP_ID: tapId,
            }),
            db: database.db,
            sink,
          }),
        ),
      );
      const publisher = await connectPublisher(mosquitto.url, 5);
      try {
        await Promise.all(taps.map((tap) => tap.subscribed));
        const messages = Array.from({ length: 2000 }, (_, index) => ({
          topic: `${LOCAL_DOMAIN}/${catalogue.unitNodeIds[index % 2]}/pepeunit`,
          payload: Buffer.from(String(index)),
        }));
        expect(await publishAll(publisher, messages)).toBe(2000);
        await waitUntil(
          () => sink.messages >= 2000,
          () => `${sink.messages} of 2000`,
        );
        await Promise.all(taps.map((tap) => tap.stop()));

        expect(sink.messages).toBe(2000);
        const received = taps.map((tap) => tap.stats().messagesReceived);
        expect(received.reduce((sum, count) => sum + count, 0)).toBe(2000);
        expect(received.every((count) => count > 0)).toBe(true);
        expect(taps.every((tap) => tap.stats().sharedSubscription)).toBe(true);
      } finally {
        await Promise.all(taps.map((tap) => tap.stop()));
        await publisher.endAsync();
      }
    });

    it("reconnects after a broker restart and estimates the gap", async () => {
      if (!mosquitto) throw new Error("Mosquitto is not running");
      const sink = new MemorySink();
      const config = tapTestConfig({
        PU_NODE_MQTT_URL: mosquitto.url.href,
        PU_NODE_TAP_ID: "restart",
      });
      const tap = await startTap({ config, db: database.db, sink });
      let publisher = await connectPublisher(mosquitto.url, 5);
      const topic = `${LOCAL_DOMAIN}/${catalogue.otherUnitNodeId}`;
      const batch = (count: number) =>
        Array.from({ length: count }, () => ({ topic, payload: Buffer.from("on") }));
      try {
        await tap.subscribed;
        await publishAll(publisher, batch(500));
        await waitUntil(
          () => tap.stats().messagesReceived === 500,
          () => "500 received",
        );
        await publisher.endAsync();

        await mosquitto.stop();
        await waitUntil(
          () => !tap.stats().connected,
          () => "tap sees the disconnect",
        );
        await mosquitto.start();
        await waitUntil(
          () => tap.stats().connected,
          () => "tap reconnected",
        );

        expect(tap.stats().disconnects).toBe(1);
        expect(tap.stats().missedMessagesEstimate).toBeGreaterThan(0);

        // Mosquitto without persistence forgot the session; the tap must have subscribed again.
        await waitUntil(
          () => tap.stats().subscribeCount === 2,
          () => "second subscription",
        );
        publisher = await connectPublisher(mosquitto.url, 5);
        await publishAll(publisher, batch(100));
        await waitUntil(
          () => sink.messages === 600,
          () => `${sink.messages} of 600`,
        );
        expect(tap.stats().messagesReceived).toBe(600);
      } finally {
        await tap.stop();
        await publisher.endAsync();
      }
    });

    it("skips QoS 1 redeliveries after a lost PUBACK", async () => {
      if (!mosquitto) throw new Error("Mosquitto is not running");
      const relay = await startRelay(mosquitto.port);
      const sink = new MemorySink();
      const config = tapTestConfig({
        PU_NODE_MQTT_URL: `mqtt://127.0.0.1:${relay.port}`,
        PU_NODE_TAP_ID: "redelivery",
      });
      const tap = await startTap({ config, db: database.db, sink });
      const publisher = await connectPublisher(mosquitto.url, 5);
      const topic = `${LOCAL_DOMAIN}/${catalogue.unitNodeIds[1]}/pepeunit`;
      const batch = (count: number) =>
        Array.from({ length: count }, () => ({ topic, payload: Buffer.from("1") }));
      try {
        await tap.subscribed;
        // The tap receives and counts these, but its PUBACKs stop at the relay.
        relay.holdUpstream();
        await publishAll(publisher, batch(50));
        await waitUntil(
          () => tap.stats().messagesReceived >= 20,
          () => "in-flight messages counted",
        );
        relay.cut();
        await waitUntil(
          () => tap.stats().subscribeCount === 2,
          () => "second subscription",
        );
        await publishAll(publisher, batch(50));
        await waitUntil(
          () => sink.messages >= 100,
          () => `${sink.messages} of 100`,
        );
        await tap.stop();

        expect(sink.messages).toBe(100);
        expect(tap.stats().redeliveriesSkipped).toBeGreaterThan(0);
      } finally {
        await tap.stop();
        await publisher.endAsync();
        await relay.close();
      }
    });
  },
);
