import { OpenAPIHono } from "@hono/zod-openapi";
import { configure, getLogger, reset } from "@logtape/logtape";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleApiError, validationHook } from "../../http/api/failures.ts";
import type { ErrorCountRow } from "../../timeseries/types.ts";
import { registerIngestSecurityScheme } from "../channels/ingest-auth.ts";
import {
  ErrorCounter,
  ErrorCountFlusher,
  type ErrorCountSink,
  OVERFLOW_FINGERPRINT,
  SAMPLE_MAX_LENGTH,
} from "./counter.ts";
import { messageTemplate, registerErrorIngestRoute } from "./ingest.ts";
import { getErrorCountingSink } from "./sink.ts";

const TOKEN = "test-ingest-token-0123456789abcdef0123456789";
const NOW = Date.parse("2026-12-04T10:30:30Z");

class MemorySink implements ErrorCountSink {
  readonly rows: ErrorCountRow[] = [];
  failNext = false;

  async writeErrorCounts(rows: ErrorCountRow[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error("store unreachable");
    }
    this.rows.push(...rows);
  }
}

describe("error counting sink", () => {
  const counter = new ErrorCounter();

  beforeAll(async () => {
    await configure({
      reset: true,
      sinks: { errors: getErrorCountingSink(counter) },
      loggers: [{ category: ["pepeunit-node"], sinks: ["errors"], lowestLevel: "debug" }],
    });
  });

  afterAll(async () => {
    await reset();
  });

  it("counts one template as one fingerprint", () => {
    const logger = getLogger(["pepeunit-node", "federation", "delivery"]);
    for (const inbox of ["https://a.example/inbox", "https://b.example/inbox"]) {
      logger.error("Delivery to {inbox} failed", { inbox });
    }
    logger.fatal("Delivery to {inbox} failed", { inbox: "https://c.example/inbox" });
    logger.warning("Delivery to {inbox} failed", { inbox: "https://d.example/inbox" });
    logger.error("Queue stopped");

    const rows = counter.take();
    expect(rows).toHaveLength(2);
    const delivery = rows.find((row) => row.sample.startsWith("Delivery"));
    expect(delivery?.count).toBe(3);
    expect(delivery?.level).toBe("critical");
    expect(delivery?.source).toBe("node");
    expect(delivery?.category).toBe("pepeunit-node.federation.delivery");
    expect(delivery?.sample).toBe("Delivery to https://a.example/inbox failed");
    expect(rows.find((row) => row.sample === "Queue stopped")?.count).toBe(1);
  });

  it("cuts long samples", () => {
    getLogger(["pepeunit-node", "db"]).error("Query failed: {text}", { text: "x".repeat(500) });
    const [row] = counter.take();
    expect(row?.sample.length).toBe(SAMPLE_MAX_LENGTH);
  });
});

describe("ErrorCounter", () => {
  it("sends extra fingerprints to overflow", () => {
    const counter = new ErrorCounter({ maxFingerprintsPerMinute: 3 });
    for (let index = 0; index < 10; index += 1) {
      counter.add({
        time: new Date(NOW),
        source: "node",
        level: "error",
        category: "c",
        fingerprint: `f${index}`,
        message: `m${index}`,
      });
    }
    const rows = counter.take();
    expect(rows).toHaveLength(4);
    expect(rows.find((row) => row.fingerprint === OVERFLOW_FINGERPRINT)?.count).toBe(7);
    expect(rows.reduce((sum, row) => sum + row.count, 0)).toBe(10);
  });

  it("takes only finished minutes", () => {
    const counter = new ErrorCounter();
    const add = (time: number) =>
      counter.add({
        time: new Date(time),
        source: "node",
        level: "error",
        category: "c",
        fingerprint: "f",
        message: "m",
      });
    add(NOW - 60_000);
    add(NOW);
    const finished = counter.take(new Date(NOW));
    expect(finished).toHaveLength(1);
    expect(finished[0]?.minute.toISOString()).toBe("2026-12-04T10:29:00.000Z");
    expect(counter.pendingMinutes).toBe(1);
  });
});

describe("ErrorCountFlusher", () => {
  it("keeps rows after a failed write", async () => {
    const counter = new ErrorCounter();
    const sink = new MemorySink();
    const flusher = new ErrorCountFlusher(counter, sink, { intervalMs: 3_600_000, now: () => NOW });
    counter.add({
      time: new Date(NOW - 120_000),
      source: "node",
      level: "error",
      category: "c",
      fingerprint: "f",
      message: "m",
    });
    sink.failNext = true;
    await flusher.flush();
    expect(sink.rows).toHaveLength(0);
    await flusher.flush();
    expect(sink.rows).toHaveLength(1);
    expect(sink.rows[0]?.count).toBe(1);
    await flusher.stop();
  });

  it("flushes the current minute on stop", async () => {
    const counter = new ErrorCounter();
    const sink = new MemorySink();
    const flusher = new ErrorCountFlusher(counter, sink, { intervalMs: 3_600_000, now: () => NOW });
    counter.add({
      time: new Date(NOW),
      source: "node",
      level: "error",
      category: "c",
      fingerprint: "f",
      message: "m",
    });
    await flusher.flush();
    expect(sink.rows).toHaveLength(0);
    await flusher.stop();
    expect(sink.rows).toHaveLength(1);
  });
});

describe("messageTemplate", () => {
  it("masks values", () => {
    expect(messageTemplate("Unit 9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10 failed after 3 tries")).toBe(
      "Unit {uuid} failed after {number} tries",
    );
    expect(messageTemplate("Repo 'sensors' sync error")).toBe("Repo {string} sync error");
  });
});

describe("POST /ingest/errors", () => {
  function createApp(counter: ErrorCounter, ingestToken: string | null = TOKEN) {
    const app = new OpenAPIHono({ defaultHook: validationHook });
    app.onError(handleApiError);
    registerIngestSecurityScheme(app);
    registerErrorIngestRoute(app, {
      ingestToken: ingestToken ?? undefined,
      counter,
      now: () => NOW,
    });
    return app;
  }

  function post(app: OpenAPIHono, body: unknown, token: string | null = TOKEN) {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    return app.request("/ingest/errors", { method: "POST", headers, body: JSON.stringify(body) });
  }

  it("counts backend records by template", async () => {
    const counter = new ErrorCounter();
    const app = createApp(counter);
    const response = await post(app, {
      records: [
        {
          time: "2026-12-04T10:29:10Z",
          level: "ERROR",
          logger: "app.unit",
          message: "Unit 1 not found",
        },
        {
          time: "2026-12-04T10:29:20Z",
          level: "ERROR",
          logger: "app.unit",
          message: "Unit 22 not found",
        },
        {
          time: "2026-12-04T10:29:30Z",
          level: "CRITICAL",
          logger: "app.db",
          message: "x",
          fingerprint: "db-down",
        },
      ],
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ counted: 3 });
    const rows = counter.take();
    expect(rows).toHaveLength(2);
    expect(rows.find((row) => row.category === "app.unit")?.count).toBe(2);
    expect(rows.find((row) => row.category === "app.db")?.level).toBe("critical");
    expect(rows.every((row) => row.source === "backend")).toBe(true);
  });

  it("rejects a record older than 168 hours", async () => {
    const app = createApp(new ErrorCounter());
    const response = await post(app, {
      records: [{ time: "2026-11-20T10:00:00Z", level: "error", logger: "l", message: "m" }],
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toContain("records[0].time");
  });

  it("rejects an unknown level naming the field", async () => {
    const app = createApp(new ErrorCounter());
    const response = await post(app, {
      records: [{ time: "2026-12-04T10:29:00Z", level: "warning", logger: "l", message: "m" }],
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.message).toContain("records[0].level");
  });

  it("requires the ingest token", async () => {
    const app = createApp(new ErrorCounter());
    expect((await post(app, { records: [] }, null)).status).toBe(401);
    expect((await post(app, { records: [] }, "wrong-token")).status).toBe(403);
  });

  it("answers 503 without a configured token", async () => {
    const app = createApp(new ErrorCounter(), null);
    expect((await post(app, { records: [] })).status).toBe(503);
  });
});
