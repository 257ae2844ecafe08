import { OpenAPIHono } from "@hono/zod-openapi";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { handleApiError, validationHook } from "../../http/api/failures.ts";
import { registerIngestSecurityScheme } from "./ingest-auth.ts";
import { sumUsage } from "./usage-events.ts";
import { registerUsageIngestRoute } from "./usage-route.ts";

const TOKEN = "test-ingest-token-0123456789abcdef0123456789";
const NOW = Date.parse("2026-12-04T10:30:00Z");

let database: TestDatabase;
let app: OpenAPIHono;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "usage-ingest");
  app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(handleApiError);
  registerIngestSecurityScheme(app);
  registerUsageIngestRoute(app, { db: database.db, ingestToken: TOKEN, now: () => NOW });
});

afterAll(async () => {
  await database.drop();
});

function post(body: unknown) {
  return app.request("/ingest/usage", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  });
}

function event(id: string, value: number, extra: Record<string, unknown> = {}) {
  return {
    id,
    source: "pepeunit-backend",
    type: "unit.mqtt.messages",
    subject: "unit-1",
    time: "2026-12-04T10:00:00Z",
    value,
    ...extra,
  };
}

describe("POST /ingest/usage", () => {
  it("stores a repeated event once", async () => {
    const first = await post({ events: [event("e1", 10), event("e2", 5), event("e1", 10)] });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ created: 2, duplicates: 1 });

    const again = await post({ events: [event("e2", 5), event("e3", 0.25)] });
    expect(await again.json()).toEqual({ created: 1, duplicates: 1 });

    const totals = await sumUsage(
      database.db,
      "unit-1",
      new Date("2026-12-04T00:00:00Z"),
      new Date("2026-12-05T00:00:00Z"),
    );
    expect(Number(totals.get("unit.mqtt.messages"))).toBe(15.25);
  });

  it("keeps one id apart per source", async () => {
    const response = await post({ events: [event("shared", 1, { source: "other-sender" })] });
    expect(await response.json()).toEqual({ created: 1, duplicates: 0 });
    const repeat = await post({ events: [event("shared", 1)] });
    expect(await repeat.json()).toEqual({ created: 1, duplicates: 0 });
  });

  it("rejects an event too far in the future", async () => {
    const response = await post({ events: [event("future", 1, { time: "2026-12-04T10:40:00Z" })] });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toContain("events[0].time");
  });

  it("rejects an event older than 35 days", async () => {
    const response = await post({ events: [event("old", 1, { time: "2026-10-01T00:00:00Z" })] });
    expect(response.status).toBe(400);
  });

  it("rejects a negative value naming the field", async () => {
    const response = await post({ events: [event("negative", -1)] });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toContain("events[0].value");
  });

  it("stores nothing from a rejected request", async () => {
    await post({ events: [event("valid-but-rejected", 1), event("bad", 1, { time: "nope" })] });
    const accepted = await post({ events: [event("valid-but-rejected", 1)] });
    expect(await accepted.json()).toEqual({ created: 1, duplicates: 0 });
  });
});
