import { Temporal as TemporalPolyfill } from "@js-temporal/polyfill";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PgMessageQueue } from "../../federation/queue.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { createRepo } from "../catalogue/repos.ts";
import { createUnit } from "../catalogue/units.ts";
import { federatedRepos, federatedUnits } from "../db/schema/federation.ts";
import { createMetricsRoute } from "./metrics.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "http-metrics");
});

afterAll(async () => {
  await database.drop();
});

/** Returns the `# TYPE` of every family in a Prometheus text exposition. */
function typesOf(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (match[1] && match[2]) types.set(match[1], match[2]);
  }
  return types;
}

/** Returns the value of the one sample line that starts with `series`. */
function sampleValue(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function scrape(app: Hono): Promise<string> {
  const response = await app.request("/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return response.text();
}

describe("GET /metrics", () => {
  it("exposes process metrics", async () => {
    const metrics = createMetricsRoute();
    const app = new Hono();
    app.get("/metrics", metrics.handler);
    const types = typesOf(await scrape(app));
    expect(types.get("process_cpu_seconds_total")).toBe("counter");
    expect(types.get("process_resident_memory_bytes")).toBe("gauge");
    expect(types.get("nodejs_eventloop_lag_seconds")).toBe("gauge");
  });

  it("counts HTTP requests by route pattern", async () => {
    const metrics = createMetricsRoute({ defaultMetrics: false });
    const app = new Hono();
    app.use(metrics.httpMiddleware);
    app.get("/metrics", metrics.handler);
    app.get("/api/v1/repos/:id", (c) => c.json({ id: c.req.param("id") }));
    app.post("/api/v1/fail", () => {
      throw new Error("boom");
    });

    await app.request("/api/v1/repos/1");
    await app.request("/api/v1/repos/2");
    await app.request("/api/v1/fail", { method: "POST" });
    await app.request("/nowhere");

    const text = await scrape(app);
    const types = typesOf(text);
    expect(types.get("pepeunit_node_http_requests_total")).toBe("counter");
    expect(types.get("pepeunit_node_http_request_duration_seconds")).toBe("histogram");
    expect(
      sampleValue(
        text,
        'pepeunit_node_http_requests_total{method="GET",route="/api/v1/repos/:id",status="200"}',
      ),
    ).toBe(2);
    expect(
      sampleValue(
        text,
        'pepeunit_node_http_requests_total{method="POST",route="/api/v1/fail",status="500"}',
      ),
    ).toBe(1);
    expect(
      sampleValue(
        text,
        'pepeunit_node_http_requests_total{method="GET",route="unmatched",status="404"}',
      ),
    ).toBe(1);
    expect(text).not.toContain('route="/api/v1/repos/1"');
  });

  it("reports catalogue sizes and queue depth", async () => {
    const repo = await createRepo(database.db, {
      name: "metrics-repo",
      repositoryUrl: "https://git.example.com/metrics-repo.git",
      platform: "Gitlab",
    });
    if (!repo.ok) throw new Error("createRepo failed");
    const unit = await createUnit(database.db, { repoId: repo.value.id, name: "metrics-unit" });
    expect(unit.ok).toBe(true);
    await database.db.insert(federatedRepos).values([
      {
        iri: "https://peer.example.org/ap/repos/1",
        originHost: "peer.example.org",
        name: "peer-repo-1",
        repositoryUrl: "https://git.example.org/1.git",
        platform: "Github",
      },
      {
        iri: "https://peer.example.org/ap/repos/2",
        originHost: "peer.example.org",
        name: "peer-repo-2",
        repositoryUrl: "https://git.example.org/2.git",
        platform: "Github",
      },
    ]);
    await database.db.insert(federatedUnits).values({
      iri: "https://peer.example.org/ap/units/1",
      repoIri: "https://peer.example.org/ap/repos/1",
      originHost: "peer.example.org",
      name: "peer-unit",
    });
    const queue = new PgMessageQueue(database.pool, "metrics-test");
    await queue.enqueue({ kind: "now" });
    await queue.enqueue(
      { kind: "later" },
      {
        delay: TemporalPolyfill.Duration.from({ hours: 1 }) as unknown as Temporal.Duration,
      },
    );

    const metrics = createMetricsRoute({
      db: database.db,
      queues: { outbox: queue },
      defaultMetrics: false,
    });
    const app = new Hono();
    app.get("/metrics", metrics.handler);
    const text = await scrape(app);

    expect(typesOf(text).get("pepeunit_node_catalogue_entities")).toBe("gauge");
    expect(sampleValue(text, 'pepeunit_node_catalogue_entities{kind="repo",origin="local"}')).toBe(
      1,
    );
    expect(sampleValue(text, 'pepeunit_node_catalogue_entities{kind="unit",origin="local"}')).toBe(
      1,
    );
    expect(
      sampleValue(text, 'pepeunit_node_catalogue_entities{kind="repo",origin="federated"}'),
    ).toBe(2);
    expect(
      sampleValue(text, 'pepeunit_node_catalogue_entities{kind="unit",origin="federated"}'),
    ).toBe(1);
    expect(typesOf(text).get("pepeunit_node_queue_messages")).toBe("gauge");
    expect(sampleValue(text, 'pepeunit_node_queue_messages{queue="outbox",state="ready"}')).toBe(1);
    expect(sampleValue(text, 'pepeunit_node_queue_messages{queue="outbox",state="delayed"}')).toBe(
      1,
    );
  });

  it("leaves out series whose source fails", async () => {
    const metrics = createMetricsRoute({
      defaultMetrics: false,
      queues: { broken: { getDepth: () => Promise.reject(new Error("connection refused")) } },
    });
    const app = new Hono();
    app.get("/metrics", metrics.handler);
    const text = await scrape(app);
    expect(text).not.toContain('queue="broken"');
  });

  it("exposes the tap hooks", async () => {
    const metrics = createMetricsRoute({ defaultMetrics: false });
    const app = new Hono();
    app.get("/metrics", metrics.handler);
    metrics.tap.recordFlush({ messages: 10, bytes: 2_048 });
    metrics.tap.recordFlush({ messages: 5, bytes: 100 });
    metrics.tap.recordFlushFailure();
    metrics.tap.recordMissedMessages(3);
    const text = await scrape(app);
    const types = typesOf(text);
    for (const name of [
      "pepeunit_node_tap_messages_total",
      "pepeunit_node_tap_bytes_total",
      "pepeunit_node_tap_flush_failures_total",
      "pepeunit_node_tap_missed_messages_estimated_total",
    ]) {
      expect(types.get(name)).toBe("counter");
    }
    expect(sampleValue(text, "pepeunit_node_tap_messages_total")).toBe(15);
    expect(sampleValue(text, "pepeunit_node_tap_bytes_total")).toBe(2_148);
    expect(sampleValue(text, "pepeunit_node_tap_flush_failures_total")).toBe(1);
    expect(sampleValue(text, "pepeunit_node_tap_missed_messages_estimated_total")).toBe(3);
  });

  it("rejects negative tap counts", () => {
    const metrics = createMetricsRoute({ defaultMetrics: false });
    expect(() => metrics.tap.recordFlush({ messages: -1, bytes: 0 })).toThrow(RangeError);
    expect(() => metrics.tap.recordMissedMessages(Number.NaN)).toThrow(RangeError);
  });
});
