import { randomUUID } from "node:crypto";
import type { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { lastCompleteHour } from "../../grading/measure.ts";
import { PostgresTimeSeriesStore } from "../../timeseries/postgres/store.ts";
import { adminRequest, createTestApi, FakeFederationPort } from "./test-app.ts";

const UNIT = "00000000-0000-4000-8000-0000000000a1";
const UNKNOWN = "00000000-0000-4000-8000-0000000000ff";

let database: TestDatabase;
let app: Hono;

interface RunJson {
  id: string;
  hour: string;
  trigger: string;
  status: string;
  instanceStatus: string | null;
  figures: { units: { active: number } } | null;
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "api_grading");
  app = createTestApi(database, new FakeFederationPort());
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.pool.query(
    "truncate unit_grades, load_reports, grading_runs, topic_counter_minutes, counter_batches cascade",
  );
});

async function writeUnitTraffic(hour: Date): Promise<void> {
  const store = new PostgresTimeSeriesStore(database.db);
  await store.writeCounterBatch({
    batchId: randomUUID(),
    tapId: "test",
    rows: [
      {
        minute: new Date(hour.getTime() + 5 * 60_000),
        topic: `node.example.com/${UNIT}/pepeunit`,
        domain: "node.example.com",
        domainKind: "local",
        unitNodeId: null,
        unitId: UNIT,
        repoId: null,
        messages: 720,
        bytes: 7200,
      },
    ],
  });
}

describe("POST /grading/run", () => {
  it("grades the last complete hour", async () => {
    const hour = lastCompleteHour(new Date());
    await writeUnitTraffic(hour);
    const response = await app.request("/api/v1/grading/run", adminRequest("POST"));
    expect(response.status).toBe(200);
    const run = (await response.json()) as RunJson;
    expect(run.status).toBe("completed");
    expect(run.trigger).toBe("manual");
    expect(run.instanceStatus).toBe("green");
    // The hour may turn between the two clock readings of this test.
    expect([hour.toISOString(), lastCompleteHour(new Date()).toISOString()]).toContain(run.hour);
  });

  it("rejects an hour that has not ended", async () => {
    const future = new Date(Date.now() + 3_600_000);
    future.setUTCMinutes(0, 0, 0);
    const response = await app.request(
      "/api/v1/grading/run",
      adminRequest("POST", { hour: future.toISOString() }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/has not ended yet/);
  });

  it("needs the admin token", async () => {
    const response = await app.request("/api/v1/grading/run", { method: "POST" });
    expect(response.status).toBe(401);
  });
});

describe("GET /grading/latest", () => {
  it("returns 404 before any run", async () => {
    const response = await app.request("/api/v1/grading/latest", adminRequest("GET"));
    expect(response.status).toBe(404);
  });

  it("returns the latest run", async () => {
    const posted = (await (
      await app.request("/api/v1/grading/run", adminRequest("POST"))
    ).json()) as RunJson;
    const response = await app.request("/api/v1/grading/latest", adminRequest("GET"));
    expect(response.status).toBe(200);
    expect(((await response.json()) as RunJson).id).toBe(posted.id);
  });
});

describe("GET /units/{id}/grade", () => {
  it("returns the grade of an active Unit", async () => {
    const hour = lastCompleteHour(new Date());
    await writeUnitTraffic(hour);
    await app.request("/api/v1/grading/run", adminRequest("POST", { hour: hour.toISOString() }));
    const response = await app.request(
      `/api/v1/units/${UNIT}/grade?history=5`,
      adminRequest("GET"),
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      latest: { colour: string; idle: boolean; meanMps: number; hot: boolean };
      history: unknown[];
    };
    expect(body.latest.colour).toBe("green");
    expect(body.latest.idle).toBe(false);
    expect(body.latest.meanMps).toBe(720 / 3600);
    expect(body.latest.hot).toBe(true);
    expect(body.history).toHaveLength(1);
  });

  it("returns 404 for an unknown Unit", async () => {
    await app.request("/api/v1/grading/run", adminRequest("POST"));
    const response = await app.request(`/api/v1/units/${UNKNOWN}/grade`, adminRequest("GET"));
    expect(response.status).toBe(404);
  });
});
