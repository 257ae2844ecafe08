/**
 * Hot-topic metering against the fake EMQX 5.8 API in `test/fakes/emqx.ts`; these tests never
 * reach a live EMQX.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeEmqx, startFakeEmqx } from "../../../test/fakes/emqx.ts";
import type { BatchWriteOutcome } from "../../timeseries/types.ts";
import { BrokerTotalsMeter } from "./broker.ts";
import { EmqxClient } from "./client.ts";
import {
  attributeByDomain,
  type EmqxTopicCounterBatch,
  type EmqxTopicCounterSink,
  HotTopicMeter,
  type HotTopicMeterOptions,
} from "./topic-metrics.ts";

const DOMAIN = "unit.example.com";

let fake: FakeEmqx;
let client: EmqxClient;

beforeAll(async () => {
  fake = await startFakeEmqx();
  client = new EmqxClient({ url: fake.url, apiKey: fake.apiKey, apiSecret: fake.apiSecret });
});

afterAll(async () => {
  await fake.stop();
});

beforeEach(() => {
  fake.topics.clear();
  fake.topicLimit = 512;
  fake.scriptedResponses.length = 0;
});

/** A sink that keeps batches in memory and fails on request. */
class MemorySink implements EmqxTopicCounterSink {
  readonly batches: EmqxTopicCounterBatch[] = [];
  failuresLeft = 0;

  async writeEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome> {
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      throw new Error("store unavailable");
    }
    if (this.batches.some((stored) => stored.batchId === batch.batchId)) return "duplicate";
    this.batches.push(batch);
    return "written";
  }

  total(topic: string, field: "messages" | "messagesOut" = "messages"): number {
    let sum = 0;
    for (const batch of this.batches) {
      for (const row of batch.rows) if (row.topic === topic) sum += row[field];
    }
    return sum;
  }
}

/** Returns a clock that moves 60 seconds per reading, starting just after a minute boundary. */
function steppingClock(start = Date.UTC(2026, 0, 5, 10, 0, 2)): () => Date {
  let now = start - 60_000;
  return () => {
    now += 60_000;
    return new Date(now);
  };
}

function meter(
  hot: { topics: string[] },
  sink: MemorySink,
  overrides: Partial<HotTopicMeterOptions> = {},
): HotTopicMeter {
  return new HotTopicMeter({
    client,
    hotTopics: () => hot.topics,
    sink,
    attribute: attributeByDomain(DOMAIN),
    maxTopics: 3,
    now: steppingClock(),
    ...overrides,
  });
}

const topic = (name: string) => `${DOMAIN}/output_base_topic/${name}/value/pepeunit`;

describe("HotTopicMeter", () => {
  it("converges to the top N topics", async () => {
    const hot = { topics: ["a", "b", "c", "d", "e"].map(topic) };
    const hotMeter = meter(hot, new MemorySink());

    const first = await hotMeter.runOnce();
    expect(first.registered).toBe(3);
    expect([...fake.topics.keys()]).toEqual(hot.topics.slice(0, 3));

    hot.topics = ["e", "a", "f", "b"].map(topic);
    const second = await hotMeter.runOnce();
    expect(second.deleted).toBe(2);
    expect(second.registered).toBe(2);
    expect(new Set(fake.topics.keys())).toEqual(new Set(["e", "a", "f"].map(topic)));

    const third = await hotMeter.runOnce();
    expect(third.registered).toBe(0);
    expect(third.deleted).toBe(0);
    expect(fake.topics.size).toBe(3);
  });

  it("deletes topics it does not follow", async () => {
    await client.registerTopicMetrics("manual/topic");
    const hotMeter = meter({ topics: [topic("a")] }, new MemorySink());
    await hotMeter.runOnce();
    expect([...fake.topics.keys()]).toEqual([topic("a")]);
  });

  it("skips wildcard and empty topics", async () => {
    const hot = { topics: ["", `${DOMAIN}/+/x`, `${DOMAIN}/#`, topic("a")] };
    const summary = await meter(hot, new MemorySink()).runOnce();
    expect(summary.registered).toBe(1);
    expect([...fake.topics.keys()]).toEqual([topic("a")]);
  });

  it("turns counter deltas into minute rows", async () => {
    const sink = new MemorySink();
    let time = Date.UTC(2026, 0, 5, 10, 0, 2);
    const hotMeter = meter({ topics: [topic("a"), "other.example.org/x"] }, sink, {
      now: () => new Date(time),
    });
    await hotMeter.runOnce();
    fake.publish(topic("a"), 5, 10, 2);
    fake.publish("other.example.org/x", 1, 10, 0);
    time += 60_000;
    await hotMeter.runOnce();

    const rows = sink.batches.flatMap((batch) => batch.rows);
    const local = rows.find((row) => row.topic === topic("a"));
    expect(local?.messages).toBe(5);
    expect(local?.messagesOut).toBe(10);
    expect(local?.bytes).toBe(0);
    expect(local?.domain).toBe(DOMAIN);
    expect(local?.domainKind).toBe("local");
    // Registered at 10:00:02, read at 10:01:02: the midpoint falls in minute 10:00.
    expect(local?.minute.toISOString()).toBe("2026-01-05T10:00:00.000Z");
    const foreign = rows.find((row) => row.topic === "other.example.org/x");
    expect(foreign?.domainKind).toBe("foreign");
    expect(foreign?.messagesDropped).toBe(1);
    expect(sink.batches[0]?.source).toBe("emqx");

    fake.publish(topic("a"), 2);
    time += 60_000;
    await hotMeter.runOnce();
    expect(sink.total(topic("a"))).toBe(7);
    expect(sink.batches.at(-1)?.rows[0]?.minute.toISOString()).toBe("2026-01-05T10:01:00.000Z");
  });

  it("writes no rows for idle topics", async () => {
    const sink = new MemorySink();
    const hotMeter = meter({ topics: [topic("a")] }, sink);
    await hotMeter.runOnce();
    const summary = await hotMeter.runOnce();
    expect(summary.rowsWritten).toBe(0);
    expect(sink.batches).toEqual([]);
  });

  it("takes the new value after a broker restart", async () => {
    const sink = new MemorySink();
    const hotMeter = meter({ topics: [topic("a")] }, sink);
    await hotMeter.runOnce();
    fake.publish(topic("a"), 10);
    await hotMeter.runOnce();
    fake.restart();
    fake.publish(topic("a"), 4);
    await hotMeter.runOnce();
    expect(sink.total(topic("a"))).toBe(14);
  });

  it("detects a reset whose count grew past the old value", async () => {
    const sink = new MemorySink();
    const hotMeter = meter({ topics: [topic("a")] }, sink);
    await hotMeter.runOnce();
    fake.publish(topic("a"), 3);
    await hotMeter.runOnce();
    await client.resetTopicMetrics(topic("a"));
    fake.publish(topic("a"), 8);
    await hotMeter.runOnce();
    expect(sink.total(topic("a"))).toBe(11);
  });

  it("uses the first reading of a foreign registration as baseline", async () => {
    const sink = new MemorySink();
    await client.registerTopicMetrics(topic("a"));
    fake.publish(topic("a"), 100);
    const hotMeter = meter({ topics: [topic("a")] }, sink);
    await hotMeter.runOnce();
    fake.publish(topic("a"), 6);
    await hotMeter.runOnce();
    expect(sink.total(topic("a"))).toBe(6);
  });

  it("keeps a failed batch and writes it again", async () => {
    const sink = new MemorySink();
    const hotMeter = meter({ topics: [topic("a")] }, sink);
    await hotMeter.runOnce();
    fake.publish(topic("a"), 5);
    sink.failuresLeft = 1;
    await expect(hotMeter.runOnce()).rejects.toThrow("store unavailable");
    fake.publish(topic("a"), 3);
    await hotMeter.runOnce();
    expect(sink.total(topic("a"))).toBe(8);
    const ids = sink.batches.map((batch) => batch.batchId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("reads nothing new while the store is down", async () => {
    const sink = new MemorySink();
    const hotMeter = meter({ topics: [topic("a")] }, sink);
    await hotMeter.runOnce();
    fake.publish(topic("a"), 5);
    sink.failuresLeft = 2;
    await expect(hotMeter.runOnce()).rejects.toThrow();
    fake.publish(topic("a"), 1);
    await expect(hotMeter.runOnce()).rejects.toThrow();
    await hotMeter.runOnce();
    expect(sink.total(topic("a"))).toBe(6);
  });

  it("recovers from EXCEED_LIMIT by reading the list", async () => {
    fake.topicLimit = 3;
    let intruded = false;
    const racingClient = {
      listTopicMetrics: () => client.listTopicMetrics(),
      deleteTopicMetrics: (name: string) => client.deleteTopicMetrics(name),
      // Another client fills the cap between the meter's list and its first registration.
      registerTopicMetrics: async (name: string) => {
        if (!intruded) {
          intruded = true;
          for (const other of ["x/1", "x/2", "x/3"]) await client.registerTopicMetrics(other);
        }
        return client.registerTopicMetrics(name);
      },
    };
    const hot = { topics: [topic("a"), topic("b")] };
    const summary = await meter(hot, new MemorySink(), { client: racingClient }).runOnce();
    expect(summary.limitExceeded).toBe(false);
    expect(summary.deleted).toBe(3);
    expect(new Set(fake.topics.keys())).toEqual(new Set(hot.topics));
  });

  it("stops registering when the cap stays full", async () => {
    fake.topicLimit = 1;
    const hot = { topics: [topic("a"), topic("b"), topic("c")] };
    const summary = await meter(hot, new MemorySink()).runOnce();
    expect(summary.limitExceeded).toBe(true);
    expect(summary.registered).toBe(1);
    expect(fake.topics.size).toBe(1);
  });

  it("never holds more than N topics", async () => {
    const hot = { topics: [] as string[] };
    const rotating = meter(hot, new MemorySink(), { maxTopics: 5 });
    for (let round = 0; round < 6; round += 1) {
      hot.topics = Array.from({ length: 9 }, (_, index) => topic(`r${round}-${index}`));
      await rotating.runOnce();
      expect(fake.topics.size).toBe(5);
    }
  });

  it.each([0, 501, 2.5])("rejects maxTopics %s", (maxTopics) => {
    expect(() => meter({ topics: [] }, new MemorySink(), { maxTopics })).toThrow(RangeError);
  });
});

describe("BrokerTotalsMeter", () => {
  it("returns per-interval deltas", async () => {
    const totals = new BrokerTotalsMeter(client, steppingClock());
    expect(await totals.read()).toBeUndefined();
    fake.publish("t/1", 4, 25, 2);
    const delta = await totals.read();
    expect(delta?.messagesReceived).toBe(4);
    expect(delta?.messagesSent).toBe(8);
    expect(delta?.bytesReceived).toBe(100);
    expect(delta?.bytesSent).toBe(200);
    expect(delta?.restartedNodes).toEqual([]);
    expect(delta?.to.getTime()).toBe((delta?.from.getTime() ?? 0) + 60_000);
  });

  it("takes the new value after a restart", async () => {
    const totals = new BrokerTotalsMeter(client, steppingClock());
    fake.publish("t/1", 50);
    await totals.read();
    fake.restart();
    fake.publish("t/1", 3, 10, 1);
    const delta = await totals.read();
    expect(delta?.messagesReceived).toBe(3);
    expect(delta?.bytesReceived).toBe(30);
    expect(delta?.restartedNodes).toEqual(["emqx@127.0.0.1"]);
  });
});
