/**
 * The backend scraper runs against a fake backend: a local HTTP server that serves counters in the
 * Prometheus text exposition format 0.0.4, shaped like prometheus-fastapi-instrumentator's
 * `http_requests_total{handler,method,status}`. It is a fake, not the Pepeunit backend.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelCountRow } from "../../timeseries/types.ts";
import {
  BACKEND_PROMETHEUS_SOURCE,
  BackendChannelScraper,
  backendChannelJob,
  counterDeltas,
  readRequestCounters,
} from "./backend-scraper.ts";
import { classifyHandler } from "./classify.ts";
import { spreadOverMinutes } from "./minutes.ts";
import { mqttChannelRows } from "./mqtt.ts";
import { parsePrometheusText } from "./prometheus-text.ts";

const T0 = Date.parse("2026-12-04T10:00:30Z");

function exposition(counters: Record<string, number>, startTime?: number): string {
  const lines = [
    "# HELP http_requests_total Total number of requests by method, status and handler.",
    "# TYPE http_requests_total counter",
  ];
  for (const [handler, value] of Object.entries(counters)) {
    lines.push(`http_requests_total{handler="${handler}",method="POST",status="2xx"} ${value}.0`);
  }
  if (startTime !== undefined) {
    lines.push(
      "# TYPE process_start_time_seconds gauge",
      `process_start_time_seconds ${startTime}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

describe("classifyHandler", () => {
  it.each([
    ["/pepeunit/graphql", "graphql"],
    ["/graphql", "graphql"],
    ["/pepeunit/api/v1/bot", "telegram"],
    ["/pepeunit/api/v1/units/{uuid}", "rest"],
    ["/api/v1/unit_nodes/get_data_pipe_data/", "rest"],
    ["/pepeunit", "other"],
    ["/pepeunit/metrics", "other"],
    ["none", "other"],
  ])("classifies %s as %s", (handler, channel) => {
    expect(classifyHandler(handler)).toBe(channel);
  });
});

describe("parsePrometheusText", () => {
  it("keeps the last sample without a final newline", () => {
    const [family] = parsePrometheusText('# TYPE a counter\na{x="1"} 3\na{x="2"} 4');
    expect(family?.metrics).toHaveLength(2);
  });
});

describe("spreadOverMinutes", () => {
  it("splits by overlap and keeps the sum exact", () => {
    const parts = spreadOverMinutes(10, T0, T0 + 60_000);
    expect([...parts.values()].reduce((a, b) => a + b, 0)).toBe(10);
    expect(parts.get(Date.parse("2026-12-04T10:00:00Z"))).toBe(5);
    expect(parts.get(Date.parse("2026-12-04T10:01:00Z"))).toBe(5);
  });

  it("spreads a missed scrape over every minute", () => {
    const parts = spreadOverMinutes(7, T0, T0 + 180_000);
    expect(parts.size).toBe(4);
    expect([...parts.values()].reduce((a, b) => a + b, 0)).toBe(7);
  });
});

describe("counterDeltas", () => {
  it("takes a decreased counter as reset", () => {
    const before = readRequestCounters(exposition({ "/pepeunit/graphql": 100 }));
    const after = readRequestCounters(exposition({ "/pepeunit/graphql": 7 }));
    expect(counterDeltas(before, after).graphql).toBe(7);
  });

  it("takes a changed start time as reset", () => {
    const before = readRequestCounters(exposition({ "/pepeunit/api/v1/units": 5 }, 1000));
    const after = readRequestCounters(exposition({ "/pepeunit/api/v1/units": 9 }, 2000));
    expect(counterDeltas(before, after).rest).toBe(9);
  });

  it("counts a new series in full", () => {
    const before = readRequestCounters(exposition({ "/pepeunit/graphql": 1 }));
    const after = readRequestCounters(
      exposition({ "/pepeunit/graphql": 3, "/pepeunit/api/v1/bot": 4 }),
    );
    expect(counterDeltas(before, after)).toEqual({ graphql: 2, rest: 0, telegram: 4, other: 0 });
  });
});

describe("BackendChannelScraper against a fake backend", () => {
  let server: Server;
  let url: URL;
  let body = "";
  let status = 200;

  beforeAll(async () => {
    server = createServer((_request, response) => {
      response.writeHead(status, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      response.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/pepeunit/metrics`);
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("writes per-minute counts across a failed scrape and a restart", async () => {
    let clock = T0;
    const scraper = new BackendChannelScraper({ url, now: () => clock });
    const written: ChannelCountRow[] = [];
    const job = backendChannelJob(scraper, {
      writeChannelCounts: async (rows) => {
        written.push(...rows);
      },
    });

    body = exposition({ "/pepeunit/graphql": 1000, "/pepeunit/api/v1/units": 50 });
    await job.run();
    expect(written).toEqual([]);

    // 10:00:30 → 10:01:30: 60 GraphQL requests, half in each minute.
    clock = T0 + 60_000;
    body = exposition({ "/pepeunit/graphql": 1060, "/pepeunit/api/v1/units": 50 });
    await job.run();

    // The next scrape fails; its requests are counted by the one after.
    clock = T0 + 120_000;
    status = 503;
    await job.run();
    status = 200;

    // 10:01:30 → 10:03:30, and the backend restarted: the counter went down to 40.
    clock = T0 + 180_000;
    body = exposition({ "/pepeunit/graphql": 40, "/pepeunit/api/v1/units": 50 });
    await job.run();

    const finalCount = (minute: string, channel: string) =>
      written.filter((row) => row.minute.toISOString() === minute && row.channel === channel).at(-1)
        ?.count;
    expect(written.every((row) => row.source === BACKEND_PROMETHEUS_SOURCE)).toBe(true);
    expect(finalCount("2026-12-04T10:00:00.000Z", "graphql")).toBe(30);
    expect(finalCount("2026-12-04T10:01:00.000Z", "graphql")).toBe(30 + 10);
    expect(finalCount("2026-12-04T10:02:00.000Z", "graphql")).toBe(20);
    expect(finalCount("2026-12-04T10:03:00.000Z", "graphql")).toBe(10);
    expect(finalCount("2026-12-04T10:02:00.000Z", "rest")).toBe(0);

    const total = ["10:00", "10:01", "10:02", "10:03"]
      .map((time) => finalCount(`2026-12-04T${time}:00.000Z`, "graphql") ?? 0)
      .reduce((a, b) => a + b, 0);
    expect(total).toBe(60 + 40);
  });

  it("keeps counts when the write fails", async () => {
    let clock = T0;
    const scraper = new BackendChannelScraper({ url, now: () => clock });
    let fail = true;
    const written: ChannelCountRow[] = [];
    const job = backendChannelJob(scraper, {
      writeChannelCounts: async (rows) => {
        if (fail) throw new Error("store unreachable");
        written.push(...rows);
      },
    });
    body = exposition({ "/pepeunit/api/v1/bot": 0 });
    await job.run();
    clock = T0 + 30_000;
    body = exposition({ "/pepeunit/api/v1/bot": 6 });
    await expect(job.run()).rejects.toThrow("store unreachable");
    fail = false;
    clock = T0 + 60_000;
    body = exposition({ "/pepeunit/api/v1/bot": 6 });
    await job.run();
    const telegram = written.filter((row) => row.channel === "telegram");
    expect(telegram.reduce((sum, row) => sum + row.count, 0)).toBe(6);
  });
});

describe("mqttChannelRows", () => {
  it("adds totals of one minute", () => {
    const rows = mqttChannelRows([
      { minute: new Date("2026-12-04T10:00:00Z"), messages: 5 },
      { minute: new Date("2026-12-04T10:00:59Z"), messages: 7 },
      { minute: new Date("2026-12-04T10:01:00Z"), messages: 1 },
    ]);
    expect(rows).toEqual([
      { minute: new Date("2026-12-04T10:00:00Z"), channel: "mqtt", source: "tap", count: 12 },
      { minute: new Date("2026-12-04T10:01:00Z"), channel: "mqtt", source: "tap", count: 1 },
    ]);
  });

  it("rejects a negative total", () => {
    expect(() => mqttChannelRows([{ minute: new Date(T0), messages: -1 }])).toThrow(RangeError);
  });
});
