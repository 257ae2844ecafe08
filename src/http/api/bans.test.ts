import { OpenAPIHono } from "@hono/zod-openapi";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { loadConfig } from "../../config.ts";
import {
  banEvents,
  bans,
  domainRuleEvents,
  domainRules,
  domainRulesVersion,
} from "../../db/schema/index.ts";
import { ErrorCounter } from "../../metering/errors/counter.ts";
import { recordViolation } from "../../policy/bans.ts";
import { DomainPolicyEngine } from "../../policy/engine.ts";
import type { NodeServices } from "../../services.ts";
import { createTimeSeriesStore } from "../../timeseries/factory.ts";
import { requireAdminToken } from "../auth.ts";
import { registerBanRoutes } from "./bans.ts";
import { handleApiError, validationHook } from "./failures.ts";
import { ADMIN_TOKEN, adminRequest, FakeFederationPort } from "./test-app.ts";

const BANS = "/api/v1/policy/bans";
const START = new Date("2027-03-01T00:00:00Z");
const HOUR = 3_600_000;
const DAY = 86_400_000;
const UNIT_NODE = "9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10";
const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

let database: TestDatabase;
let app: Hono;
let now = START;

interface BanJson {
  id: string;
  kind: string;
  domain: string;
  topic: string | null;
  level: number;
  condition: string;
  reason: string;
  evidence: Record<string, unknown>;
  createdBy: string;
  startsAt: string;
  expiresAt: string | null;
  active: boolean;
  liftedBy: string | null;
  liftReason: string | null;
}

interface ErrorJson {
  error: { code: string; message: string; details?: { issues?: { field: string }[] } };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "api-bans");
  const config = loadConfig({ PU_NODE_ENV: "test", PU_NODE_ORIGIN: "https://node.example.com" });
  const services: NodeServices = {
    config,
    pool: database.pool,
    db: database.db,
    federation: new FakeFederationPort(),
    adminToken: ADMIN_TOKEN,
    timeSeries: createTimeSeriesStore(config, database.pool),
    errorCounter: new ErrorCounter(),
    policy: new DomainPolicyEngine("open"),
  };
  const api = new OpenAPIHono({ defaultHook: validationHook });
  api.onError(handleApiError);
  registerBanRoutes(api, services, requireAdminToken(ADMIN_TOKEN), () => now);
  app = new Hono();
  app.route("/api/v1", api);
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  now = START;
  await database.db.delete(bans);
  await database.db.delete(banEvents);
  await database.db.delete(domainRules);
  await database.db.delete(domainRuleEvents);
  await database.db.delete(domainRulesVersion);
});

async function createBan(body: Record<string, unknown>): Promise<BanJson> {
  const response = await app.request(BANS, adminRequest("POST", body));
  expect(response.status).toBe(201);
  return (await response.json()) as BanJson;
}

async function expectError(response: Response, status: number, code: string): Promise<ErrorJson> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as ErrorJson;
  expect(body.error.code).toBe(code);
  return body;
}

describe("ban routes", () => {
  it("require the admin token", async () => {
    const response = await app.request(BANS);
    expect(response.status).toBe(401);
  });

  it("create a manual domain ban at level 1", async () => {
    const ban = await createBan({ kind: "domain", domain: "Spam.Example.", reason: "spam wave" });
    expect(ban).toMatchObject({
      kind: "domain",
      domain: "spam.example",
      topic: null,
      level: 1,
      condition: "admin",
      reason: "spam wave",
      createdBy: "admin",
      active: true,
      expiresAt: new Date(START.getTime() + DAY).toISOString(),
    });
  });

  it("create a topic ban with an explicit end", async () => {
    const until = new Date(START.getTime() + 2 * HOUR).toISOString();
    const ban = await createBan({
      kind: "topic",
      domain: "unit.spam.example",
      topic: `unit.spam.example/${UNIT_NODE.toUpperCase()}`,
      reason: "flooding",
      until,
      evidence: { ticket: "abuse report" },
    });
    expect(ban).toMatchObject({
      kind: "topic",
      topic: `unit.spam.example/${UNIT_NODE}`,
      expiresAt: until,
      evidence: { ticket: "abuse report" },
    });
  });

  it("read a ban with its evidence", async () => {
    const outcome = await recordViolation(
      database.db,
      {
        subject: { kind: "domain", domain: "bad.example" },
        condition: "invalid_payloads",
        evidence: {
          count: 100,
          windowSeconds: 3600,
          limit: 100,
          firstSeenAt: START.toISOString(),
          lastSeenAt: START.toISOString(),
          samples: [{ status: 415 }],
        },
        now: START,
      },
      { topicBansForDomain: 3, topicBansWindowSeconds: 86_400 },
    );
    if (outcome.action !== "banned") throw new Error(outcome.action);
    const response = await app.request(`${BANS}/${outcome.ban.id}`, adminRequest("GET"));
    expect(response.status).toBe(200);
    const ban = (await response.json()) as BanJson;
    expect(ban).toMatchObject({ condition: "invalid_payloads", createdBy: "auto", active: true });
    expect(ban.evidence).toMatchObject({ count: 100, limit: 100, samples: [{ status: 415 }] });
  });

  it("list, filter and page bans", async () => {
    const first = await createBan({ kind: "domain", domain: "a.example", reason: "one" });
    now = new Date(START.getTime() + HOUR);
    const second = await createBan({ kind: "domain", domain: "b.example", reason: "two" });
    now = new Date(START.getTime() + 2 * HOUR);
    await app.request(`${BANS}/${first.id}/lift`, adminRequest("POST", { reason: "ok" }));

    const page = await app.request(`${BANS}?limit=1`, adminRequest("GET"));
    const firstPage = (await page.json()) as { items: BanJson[]; next: string | null };
    expect(firstPage.items.map((ban) => ban.id)).toEqual([second.id]);
    expect(firstPage.next).not.toBeNull();
    const rest = await app.request(`${BANS}?limit=1&cursor=${firstPage.next}`, adminRequest("GET"));
    const secondPage = (await rest.json()) as { items: BanJson[]; next: string | null };
    expect(secondPage.items.map((ban) => ban.id)).toEqual([first.id]);
    expect(secondPage.next).toBeNull();

    const active = await app.request(`${BANS}?active=true`, adminRequest("GET"));
    const activeItems = ((await active.json()) as { items: BanJson[] }).items;
    expect(activeItems.map((ban) => ban.id)).toEqual([second.id]);
    const ofDomain = await app.request(`${BANS}?domain=A.EXAMPLE`, adminRequest("GET"));
    const domainItems = ((await ofDomain.json()) as { items: BanJson[] }).items;
    expect(domainItems.map((ban) => ban.id)).toEqual([first.id]);
  });

  it("lift a ban and show its history", async () => {
    const ban = await createBan({ kind: "domain", domain: "spam.example", reason: "spam" });
    now = new Date(START.getTime() + HOUR);
    const lifted = await app.request(
      `${BANS}/${ban.id}/lift`,
      adminRequest("POST", { reason: "talked to the admin" }),
    );
    expect(lifted.status).toBe(200);
    expect(await lifted.json()).toMatchObject({
      active: false,
      liftedBy: "admin",
      liftReason: "talked to the admin",
    });

    const history = await app.request(`${BANS}/${ban.id}/history`, adminRequest("GET"));
    expect(history.status).toBe(200);
    const events = ((await history.json()) as { items: { type: string; reason: string | null }[] })
      .items;
    expect(events.map((event) => event.type)).toEqual(["lifted", "created"]);
    expect(events[0]?.reason).toBe("talked to the admin");

    const ofDomain = await app.request(`${BANS}/history?domain=spam.example`, adminRequest("GET"));
    const domainEvents = ((await ofDomain.json()) as { items: { banId: string }[] }).items;
    expect(domainEvents.map((event) => event.banId)).toEqual([ban.id, ban.id]);
  });

  it("extend a ban to a time and to permanent", async () => {
    const ban = await createBan({ kind: "domain", domain: "spam.example", reason: "spam" });
    const until = new Date(START.getTime() + 3 * DAY).toISOString();
    const later = await app.request(
      `${BANS}/${ban.id}/extend`,
      adminRequest("POST", { until, reason: "again" }),
    );
    expect(later.status).toBe(200);
    expect(((await later.json()) as BanJson).expiresAt).toBe(until);

    const permanent = await app.request(
      `${BANS}/${ban.id}/extend`,
      adminRequest("POST", { permanent: true, reason: "for good" }),
    );
    expect(permanent.status).toBe(200);
    expect(((await permanent.json()) as BanJson).expiresAt).toBeNull();
  });
});

describe("ban route errors", () => {
  it("404 for an unknown id", async () => {
    await expectError(
      await app.request(`${BANS}/${UNKNOWN_ID}`, adminRequest("GET")),
      404,
      "ban_not_found",
    );
    await expectError(
      await app.request(`${BANS}/${UNKNOWN_ID}/history`, adminRequest("GET")),
      404,
      "ban_not_found",
    );
    await expectError(
      await app.request(`${BANS}/${UNKNOWN_ID}/lift`, adminRequest("POST", { reason: "x" })),
      404,
      "ban_not_found",
    );
  });

  it("409 when lifting an ended ban", async () => {
    const ban = await createBan({ kind: "domain", domain: "spam.example", reason: "spam" });
    now = new Date(START.getTime() + 2 * DAY);
    await expectError(
      await app.request(`${BANS}/${ban.id}/lift`, adminRequest("POST", { reason: "late" })),
      409,
      "ban_ended",
    );
    await expectError(
      await app.request(
        `${BANS}/${ban.id}/extend`,
        adminRequest("POST", { permanent: true, reason: "late" }),
      ),
      409,
      "ban_ended",
    );
  });

  it("409 when a ban already covers the subject", async () => {
    await createBan({ kind: "domain", domain: "spam.example", reason: "spam" });
    await expectError(
      await app.request(
        BANS,
        adminRequest("POST", { kind: "domain", domain: "spam.example", reason: "again" }),
      ),
      409,
      "ban_exists",
    );
  });

  it("400 names the invalid field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ kind: "domain", domain: "spam.example:8443", reason: "x" }, "domain"],
      [{ kind: "domain", domain: "spam.example" }, "reason"],
      [{ kind: "topic", domain: "unit.spam.example", reason: "x" }, "topic"],
      [
        { kind: "topic", domain: "unit.spam.example", topic: "unit.spam.example/abc", reason: "x" },
        "topic",
      ],
      [
        { kind: "domain", domain: "spam.example", reason: "x", until: "2020-01-01T00:00:00Z" },
        "until",
      ],
      [
        {
          kind: "domain",
          domain: "spam.example",
          reason: "x",
          until: "2030-01-01T00:00:00Z",
          permanent: true,
        },
        "until",
      ],
      [{ kind: "domain", domain: "spam.example", reason: "x", colour: "red" }, "colour"],
    ];
    for (const [body, field] of cases) {
      const error = await expectError(
        await app.request(BANS, adminRequest("POST", body)),
        400,
        "invalid_request",
      );
      expect(
        error.error.details?.issues?.map((issue) => issue.field),
        JSON.stringify(body),
      ).toContain(field);
    }
  });

  it("400 for an extension without until or to an earlier time", async () => {
    const ban = await createBan({ kind: "domain", domain: "spam.example", reason: "spam" });
    const missing = await expectError(
      await app.request(`${BANS}/${ban.id}/extend`, adminRequest("POST", { reason: "x" })),
      400,
      "invalid_request",
    );
    expect(missing.error.details?.issues?.[0]?.field).toBe("until");
    const earlier = await expectError(
      await app.request(
        `${BANS}/${ban.id}/extend`,
        adminRequest("POST", {
          until: new Date(START.getTime() + HOUR).toISOString(),
          reason: "x",
        }),
      ),
      400,
      "invalid_request",
    );
    expect(earlier.error.message).toContain("until");
  });

  it("400 for a malformed id or filter", async () => {
    await expectError(
      await app.request(`${BANS}/not-a-uuid`, adminRequest("GET")),
      400,
      "invalid_request",
    );
    await expectError(
      await app.request(`${BANS}?active=maybe`, adminRequest("GET")),
      400,
      "invalid_request",
    );
    await expectError(
      await app.request(`${BANS}?domain=a/b`, adminRequest("GET")),
      400,
      "invalid_request",
    );
  });
});
