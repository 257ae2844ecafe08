/**
 * Contract tests of the EMQX client against the fake EMQX 5.8 API in `test/fakes/emqx.ts`.
 * EMQX does not run on the development machines, so these tests never reach a live EMQX. The
 * fake follows the EMQX v5.8.8 sources for paths, status codes, error codes and bodies.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeEmqx, startFakeEmqx } from "../../../test/fakes/emqx.ts";
import { readBrokerUptime } from "./broker.ts";
import { createEmqxClientFromConfig, EmqxClient } from "./client.ts";
import { EmqxApiError } from "./errors.ts";
import { sumSeries } from "./prometheus.ts";

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
  fake.requests.length = 0;
  fake.scriptedResponses.length = 0;
  fake.delayMs = 0;
  fake.topicLimit = 512;
  fake.topicKeySpelling = "messages";
  fake.prometheusBasicAuth = false;
});

async function failure(promise: Promise<unknown>): Promise<EmqxApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof EmqxApiError) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}

describe("EmqxClient authentication", () => {
  it("sends the API key as HTTP Basic", async () => {
    await client.getStats();
    const expected = `Basic ${Buffer.from(`${fake.apiKey}:${fake.apiSecret}`).toString("base64")}`;
    expect(fake.requests[0]?.authorization).toBe(expected);
  });

  it("reports 401 with EMQX's code and no secret", async () => {
    const wrong = new EmqxClient({
      url: fake.url,
      apiKey: fake.apiKey,
      apiSecret: "wrong-secret-x",
    });
    const error = await failure(wrong.getMetrics());
    expect(error.kind).toBe("http");
    expect(error.status).toBe(401);
    expect(error.code).toBe("BAD_API_KEY_OR_SECRET");
    expect(error.emqxMessage).toBe("Check api_key/api_secret");
    expect(error.endpoint).toBe("GET /api/v5/metrics");
    expect(error.message).toContain("PU_NODE_EMQX_API_SECRET");
    expect(error.message).not.toContain("wrong-secret-x");
    expect(JSON.stringify(error)).not.toContain("wrong-secret-x");
  });

  it("takes credentials from the URL and keeps them out of errors", async () => {
    const url = new URL(fake.url.href);
    url.username = fake.apiKey;
    url.password = "url-secret-y";
    const fromUrl = new EmqxClient({ url });
    expect(fromUrl.apiBase.href).not.toContain("url-secret-y");
    const error = await failure(fromUrl.getStats());
    expect(error.status).toBe(401);
    expect(error.message).not.toContain("url-secret-y");
  });

  it("rejects a configuration without a key", () => {
    expect(() =>
      createEmqxClientFromConfig({
        emqxApiUrl: fake.url,
        emqxApiKey: undefined,
        emqxApiSecret: undefined,
      }),
    ).toThrow(/PU_NODE_EMQX_API_KEY/);
  });

  it("is off without an API URL", () => {
    const off = createEmqxClientFromConfig({
      emqxApiUrl: undefined,
      emqxApiKey: undefined,
      emqxApiSecret: undefined,
    });
    expect(off).toBeUndefined();
  });
});

describe("EmqxClient transport", () => {
  it("accepts a base URL ending in /api/v5", async () => {
    const withPath = new EmqxClient({
      url: new URL("/api/v5", fake.url),
      apiKey: fake.apiKey,
      apiSecret: fake.apiSecret,
    });
    await withPath.getStats();
    expect(fake.requests[0]?.rawPath).toBe("/api/v5/stats");
  });

  it("times out with the endpoint named", async () => {
    fake.delayMs = 500;
    const impatient = new EmqxClient({
      url: fake.url,
      apiKey: fake.apiKey,
      apiSecret: fake.apiSecret,
      timeoutMs: 50,
    });
    const error = await failure(impatient.getStats());
    expect(error.kind).toBe("timeout");
    expect(error.endpoint).toBe("GET /api/v5/stats");
  });

  it("reports a refused connection as a network failure", async () => {
    const closed = await startFakeEmqx();
    const url = closed.url;
    await closed.stop();
    const unreachable = new EmqxClient({ url, apiKey: "k", apiSecret: "s" });
    const error = await failure(unreachable.getStats());
    expect(error.kind).toBe("network");
  });

  it("reports a wrong base path as NOT_FOUND", async () => {
    const misplaced = new EmqxClient({
      url: new URL("/dashboard", fake.url),
      apiKey: fake.apiKey,
      apiSecret: fake.apiSecret,
    });
    const error = await failure(misplaced.getStats());
    expect(error.status).toBe(404);
    expect(error.code).toBe("NOT_FOUND");
  });

  it("rejects a body of the wrong shape", async () => {
    fake.scriptedResponses.push({
      status: 200,
      body: JSON.stringify({ "messages.received": "x" }),
    });
    const error = await failure(client.getMetrics());
    expect(error.kind).toBe("invalid_response");
  });

  it("rejects a body that is not JSON", async () => {
    fake.scriptedResponses.push({ status: 200, body: "<html>proxy error</html>" });
    const error = await failure(client.listNodes());
    expect(error.kind).toBe("invalid_response");
    expect(error.message).toContain("not JSON");
  });
});

describe("EmqxClient counters", () => {
  it("reads aggregated global metrics", async () => {
    fake.publish("unit.example.com/a", 3, 20);
    const metrics = await client.getMetrics();
    expect(metrics["messages.received"]).toBe(fake.metrics["messages.received"]);
    expect(metrics["bytes.received"]).toBe(fake.metrics["bytes.received"]);
    expect(fake.requests[0]?.rawPath).toBe("/api/v5/metrics");
  });

  it("reads metrics per node", async () => {
    const byNode = await client.getMetricsByNode();
    expect([...byNode.keys()]).toEqual(["emqx@127.0.0.1"]);
    expect(byNode.get("emqx@127.0.0.1")?.["messages.sent"]).toBe(fake.metrics["messages.sent"]);
  });

  it("reads stats", async () => {
    const stats = await client.getStats();
    expect(stats["connections.count"]).toBe(3);
    expect(stats["topics.count"]).toBe(7);
  });

  it("reads node uptime", async () => {
    const uptime = await readBrokerUptime(client);
    expect(uptime.uptimeSeconds).toBe(5120);
    expect(uptime.nodes[0]?.version).toBe("5.8.8");
  });

  it("parses Prometheus stats", async () => {
    fake.publish("unit.example.com/p", 4);
    const stats = await client.getPrometheusStats();
    expect(stats.values.emqx_messages_received).toBe(fake.metrics["messages.received"]);
    expect(stats.values.emqx_connections_count).toBe(3);
    expect(stats.values['emqx_vm_cpu_use{node="emqx@127.0.0.1"}']).toBe(12.5);
    expect(sumSeries(stats, "emqx_vm_cpu_use")).toBe(12.5);
    expect(stats.samples.find((sample) => sample.name === "emqx_bytes_sent")?.type).toBe("counter");
  });

  it("reads Prometheus stats behind basic auth", async () => {
    fake.prometheusBasicAuth = true;
    const stats = await client.getPrometheusStats("all_nodes_aggregated");
    expect(stats.values.emqx_topics_count).toBe(7);
    const anonymous = new EmqxClient({ url: fake.url, apiKey: "nobody", apiSecret: "nothing" });
    const error = await failure(anonymous.getPrometheusStats());
    expect(error.status).toBe(401);
  });

  it("rejects text that is not Prometheus exposition", async () => {
    fake.scriptedResponses.push({ status: 200, body: 'emqx_x{node="a" 1' });
    const error = await failure(client.getPrometheusStats());
    expect(error.kind).toBe("invalid_response");
  });
});

describe("EmqxClient topic metrics", () => {
  it("registers, reads, resets and deletes", async () => {
    const topic = "unit.example.com/output_base_topic/u1/temp/pepeunit";
    expect(await client.registerTopicMetrics(topic)).toBe("registered");
    fake.publish(topic, 5, 10, 2);

    const one = await client.getTopicMetrics(topic);
    expect(one?.messagesIn).toBe(5);
    expect(one?.messagesOut).toBe(10);
    expect(one?.metrics["messages.qos0.in.count"]).toBe(5);

    const all = await client.listTopicMetrics();
    expect(all.map((item) => item.topic)).toEqual([topic]);

    expect(await client.resetTopicMetrics(topic)).toBe("reset");
    const reset = await client.getTopicMetrics(topic);
    expect(reset?.messagesIn).toBe(0);
    expect(reset?.resetTime).toBeDefined();

    expect(await client.resetTopicMetrics()).toBe("reset");
    expect(await client.deleteTopicMetrics(topic)).toBe("deleted");
    expect(await client.getTopicMetrics(topic)).toBeUndefined();
  });

  it("reports missing topics as not found", async () => {
    expect(await client.getTopicMetrics("unit.example.com/none")).toBeUndefined();
    expect(await client.deleteTopicMetrics("unit.example.com/none")).toBe("not_found");
    expect(await client.resetTopicMetrics("unit.example.com/none")).toBe("not_found");
  });

  it("reports an existing topic as already registered", async () => {
    await client.registerTopicMetrics("unit.example.com/twice");
    expect(await client.registerTopicMetrics("unit.example.com/twice")).toBe("already_registered");
  });

  it("throws BAD_TOPIC for a wildcard", async () => {
    const error = await failure(client.registerTopicMetrics("unit.example.com/+/state"));
    expect(error.status).toBe(400);
    expect(error.code).toBe("BAD_TOPIC");
    expect(error.emqxMessage).toBe("Wildcard topic is not supported");
  });

  it("throws BAD_REQUEST for an empty topic", async () => {
    const error = await failure(client.registerTopicMetrics(""));
    expect(error.status).toBe(400);
    expect(error.code).toBe("BAD_REQUEST");
  });

  it("reports the 512-topic cap as limit exceeded", async () => {
    for (let index = 0; index < 512; index += 1) {
      expect(await client.registerTopicMetrics(`cap/${index}`)).toBe("registered");
    }
    expect(await client.registerTopicMetrics("cap/512")).toBe("limit_exceeded");
    expect(fake.topics.size).toBe(512);
  });

  it("throws on a 404 that is not TOPIC_NOT_FOUND", async () => {
    fake.scriptedResponses.push({
      status: 404,
      body: JSON.stringify({ code: "NOT_FOUND", message: "Request Path Not Found" }),
    });
    const error = await failure(client.getTopicMetrics("unit.example.com/x"));
    expect(error.code).toBe("NOT_FOUND");
  });

  it.each([
    [
      "a topic with slashes",
      "unit.example.com/input_base_topic/u1/cmd/pepeunit",
      "unit.example.com%2Finput_base_topic%2Fu1%2Fcmd%2Fpepeunit",
    ],
    [
      "a plus-free name with spaces",
      "unit.example.com/a b/c&d?e",
      "unit.example.com%2Fa%20b%2Fc%26d%3Fe",
    ],
    [
      "non-ASCII characters",
      "юнит.пример/датчик/°C",
      "%D1%8E%D0%BD%D0%B8%D1%82.%D0%BF%D1%80%D0%B8%D0%BC%D0%B5%D1%80%2F%D0%B4%D0%B0%D1%82%D1%87%D0%B8%D0%BA%2F%C2%B0C",
    ],
    ["a percent sign", "unit.example.com/100%/done", "unit.example.com%2F100%25%2Fdone"],
  ])("encodes %s as one path segment", async (_case, topic, encoded) => {
    expect(await client.registerTopicMetrics(topic)).toBe("registered");
    fake.requests.length = 0;
    const metrics = await client.getTopicMetrics(topic);
    expect(metrics?.topic).toBe(topic);
    expect(fake.requests[0]?.rawPath).toBe(`/api/v5/mqtt/topic_metrics/${encoded}`);
    expect(await client.deleteTopicMetrics(topic)).toBe("deleted");
    expect(fake.topics.has(topic)).toBe(false);
  });

  it("reads the schema's message.* key spelling", async () => {
    fake.topicKeySpelling = "message";
    await client.registerTopicMetrics("unit.example.com/spelling");
    fake.publish("unit.example.com/spelling", 7);
    const metrics = await client.getTopicMetrics("unit.example.com/spelling");
    expect(metrics?.messagesIn).toBe(7);
    expect(metrics?.metrics["messages.in.count"]).toBe(7);
  });

  it("rejects topic metrics without counters", async () => {
    fake.scriptedResponses.push({
      status: 200,
      body: JSON.stringify([{ topic: "t", create_time: "2025-01-01T00:00:00Z", metrics: {} }]),
    });
    const error = await failure(client.listTopicMetrics());
    expect(error.kind).toBe("invalid_response");
    expect(error.message).toContain("messages.in.count");
  });
});
