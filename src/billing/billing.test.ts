import { randomUUID } from "node:crypto";
import { OpenAPIHono } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { buildNodeInfo } from "../../federation/nodeinfo.ts";
import { type FakeEmqxBridges, startFakeEmqxBridges } from "../../test/fakes/emqx-bridges.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { type Config, loadConfig } from "../config.ts";
import {
  billingRuns,
  billingSettingsHistory,
  gradingRuns,
  ledgerTransactions,
  repos,
  unitBillingState,
  unitGrades,
  unitNodes,
  units,
  userNotices,
  users,
} from "../db/schema/index.ts";
import { handleApiError, validationHook } from "../http/api/failures.ts";
import { requireAdminToken } from "../http/auth.ts";
import { EmqxTransport } from "../metering/emqx/transport.ts";
import { InvalidBillingSettingsError } from "../money/billing/index.ts";
import {
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  spendTokens,
  verifyLedger,
} from "../money/ledger/index.ts";
import { PostgresTimeSeriesStore } from "../timeseries/postgres/store.ts";
import { runBillingCheck } from "./job.ts";
import { registerUserLedgerRoute } from "./ledger-routes.ts";
import { registerBillingRoutes } from "./routes.ts";
import { grantMonthlyAllowances, runAggregationBilling, runUsageBilling } from "./run.ts";
import { loadBillingSettings, updateBillingSettings } from "./settings-store.ts";
import { applyPendingBrokerChanges, resumeFundedOwners, stopUnit } from "./stopping.ts";
import { EmqxUnitAccess, OffUnitAccess } from "./unit-access.ts";

const ADMIN_TOKEN = "billing-test-admin-token-0123456789abcdef";
const DOMAIN = "unit.example.com";
const HOUR = new Date("2027-03-01T10:00:00Z");

let database: TestDatabase;
let emqx: FakeEmqxBridges;
let config: Config;
let app: Hono;
let dependencies: Parameters<typeof runUsageBilling>[0];

function admin(method: string, body?: unknown, headers: Record<string, string> = {}): RequestInit {
  const all: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers };
  if (body === undefined) return { method, headers: all };
  all["content-type"] = "application/json";
  return { method, headers: all, body: JSON.stringify(body) };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "billing");
  emqx = await startFakeEmqxBridges();
  // Capacity 1 MPS is 3600 messages per hour and 0.1 MPS free is 360, so 1800 messages cost
  // floor(100 · 1800² / 1800²) − floor(100 · 360² / 3240²) = 100 − 1 = 99 tokens.
  config = loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_ORIGIN: "https://node.example.com",
    PU_NODE_PEPEUNIT_DOMAIN: DOMAIN,
    PU_NODE_CAPACITY_MPS: "1",
    PU_NODE_FREE_MPS: "0.1",
    PU_NODE_HALF_CAPACITY_PRICE: "100",
    PU_NODE_MONTHLY_FREE_TOKENS: "50",
    PU_NODE_BILLING_ENABLED: "true",
  });
  const access = new EmqxUnitAccess(
    new EmqxTransport({ url: emqx.url, apiKey: emqx.apiKey, apiSecret: emqx.apiSecret }),
    DOMAIN,
  );
  dependencies = {
    db: database.db,
    config,
    store: new PostgresTimeSeriesStore(database.db),
    access,
  };
  const api = new OpenAPIHono({ defaultHook: validationHook });
  api.onError(handleApiError);
  registerBillingRoutes(
    api,
    dependencies,
    requireAdminToken(ADMIN_TOKEN),
    () => new Date("2027-03-01T12:30:00Z"),
  );
  registerUserLedgerRoute(api, { db: database.db, admin: requireAdminToken(ADMIN_TOKEN) });
  app = new Hono();
  app.route("/api/v1", api);
});

afterAll(async () => {
  await emqx?.stop();
  await database?.drop();
});

beforeEach(async () => {
  await database.pool.query(
    "truncate billing_settings, billing_settings_history, billing_runs, unit_grades, grading_runs cascade",
  );
  emqx.allRules = [{ topic: "other/#", permission: "deny", action: "all" }];
});

interface Fixture {
  userId: string;
  unitId: string;
  nodeId: string;
}

async function createUnit(): Promise<Fixture> {
  const db = database.db;
  const [user] = await db
    .insert(users)
    .values({ login: `u-${randomUUID()}` })
    .returning();
  const userId = (user as { id: string }).id;
  const [repo] = await db
    .insert(repos)
    .values({
      name: `r-${randomUUID()}`,
      repositoryUrl: "https://git.example.com/r",
      platform: "Gitlab",
    })
    .returning();
  const [unit] = await db
    .insert(units)
    .values({ repoId: (repo as { id: string }).id, ownerId: userId, name: `unit-${randomUUID()}` })
    .returning();
  const unitId = (unit as { id: string }).id;
  const [node] = await db
    .insert(unitNodes)
    .values({ unitId, type: "Output", topicName: "temp/pepeunit" })
    .returning();
  return { userId, unitId, nodeId: (node as { id: string }).id };
}

/** Stores a completed grading run of `hour` with the Units' percentiles and message counts. */
async function grade(
  hour: Date,
  grades: { unitId: string; percentile: number; messages: number }[],
) {
  const [run] = await database.db
    .insert(gradingRuns)
    .values({
      hour,
      trigger: "manual",
      status: "completed",
      instanceStatus: "green",
      parameters: {},
      figures: {},
      finishedAt: new Date(),
    })
    .returning();
  await database.db.insert(unitGrades).values(
    grades.map((item) => ({
      hour,
      unitId: item.unitId,
      runId: (run as { id: string }).id,
      colour: "green" as const,
      percentile: item.percentile,
      meanMps: item.messages / 3600,
      peakMps: item.messages / 3600,
      messages: item.messages,
      bytes: item.messages * 10,
      activeSamples: 12,
      hot: false,
    })),
  );
}

async function creditPaid(userId: string, amount: bigint): Promise<void> {
  const { paid } = await openUserAccounts(database.db, userId);
  const clearing = await openSystemAccount(database.db, "payments_clearing");
  await postTransaction(database.db, {
    idempotencyKey: `test-credit-${randomUUID()}`,
    kind: "test",
    entries: [
      { accountId: clearing.id, amount: -amount },
      { accountId: paid.id, amount },
    ],
  });
}

async function balance(userId: string): Promise<bigint> {
  const { free, paid } = await openUserAccounts(database.db, userId);
  return free.balance + paid.balance;
}

async function usageCharges(unitId: string) {
  return (await database.db.select().from(ledgerTransactions)).filter(
    (row) => row.kind === "usage" && row.metadata.unitId === unitId,
  );
}

describe("billing settings", () => {
  it("starts from the configuration", async () => {
    const response = await app.request("/api/v1/billing/settings", admin("GET"));
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      enabled: true,
      monthlyAllowance: "50",
      region: "default",
      regionPrices: { default: "100" },
      instancePrice: null,
      halfCapacityPrice: "100",
      unitYellowPercentile: 50,
      unitRedPercentile: 80,
      updatedBy: "config",
    });
  });

  it("records each change in the history", async () => {
    const change = await app.request(
      "/api/v1/billing/settings",
      admin("PUT", { monthlyAllowance: 70, instancePrice: "40" }, { "x-changed-by": "alice" }),
    );
    expect(change.status).toBe(200);
    expect(await change.json()).toMatchObject({
      monthlyAllowance: "70",
      halfCapacityPrice: "40",
      updatedBy: "alice",
    });
    await app.request("/api/v1/billing/settings", admin("PUT", { enabled: false }));
    // A change to the same values writes no history row.
    await app.request("/api/v1/billing/settings", admin("PUT", { enabled: false }));

    const response = await app.request("/api/v1/billing/settings/history", admin("GET"));
    const { items } = (await response.json()) as {
      items: { changedBy: string; changedFields: string[]; previous: unknown }[];
    };
    expect(items.map((item) => item.changedBy)).toEqual(["admin", "alice", "config"]);
    expect(items[0]?.changedFields).toEqual(["enabled"]);
    expect(items[1]?.changedFields).toEqual(["monthlyAllowance", "instancePrice"]);
    expect(items[2]?.previous).toBeNull();
  });

  it("rejects an invalid change", async () => {
    const response = await app.request(
      "/api/v1/billing/settings",
      admin("PUT", { unitYellowPercentile: 90 }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/unitYellowPercentile: 90 must be below unitRedPercentile/);
  });

  it("names the field of a rejected value", async () => {
    const cases = [
      { change: { region: "EU West" }, message: /field region: expected a region name/ },
      { change: { colour: "red" }, message: /colour/ },
      { change: { regionPrices: { "eu-west": 80 } }, message: /must include the region default/ },
      {
        change: { monthlyAllowance: -5 },
        message:
          /^Invalid body field monthlyAllowance: expected a whole number of tokens, 0 or more/,
      },
    ];
    for (const { change, message } of cases) {
      const response = await app.request("/api/v1/billing/settings", admin("PUT", change));
      const body = (await response.json()) as { error: { message: string } };
      expect(response.status, JSON.stringify(change)).toBe(400);
      expect(body.error.message).toMatch(message);
    }
  });

  it("names the body for a change that is no object", async () => {
    const history = () => database.db.select().from(billingSettingsHistory);
    await loadBillingSettings(database.db, config);
    const before = (await history()).length;

    // The REST schema rejects such bodies first; other callers of the store get the same check.
    const failure = await updateBillingSettings(database.db, config, ["enabled"], "test").catch(
      (error: unknown) => error,
    );

    expect(failure).toBeInstanceOf(InvalidBillingSettingsError);
    expect((failure as InvalidBillingSettingsError).field).toBe("body");
    expect(await history()).toHaveLength(before);
  });

  it("requires the admin token", async () => {
    const response = await app.request("/api/v1/billing/settings");
    expect(response.status).toBe(401);
  });
});

describe("monthly allowance", () => {
  it("grants once per month when run twice", async () => {
    const { userId } = await createUnit();
    const now = new Date("2027-04-01T00:05:00Z");
    expect(await grantMonthlyAllowances(dependencies, now)).toBeGreaterThanOrEqual(1);
    await grantMonthlyAllowances(dependencies, now);
    expect(await balance(userId)).toBe(50n);
    const keys = (await database.db.select().from(ledgerTransactions)).filter(
      (row) => row.idempotencyKey === `free:${userId}:2027-04`,
    );
    expect(keys).toHaveLength(1);
  });

  it("grants nothing while monetisation is off", async () => {
    await app.request("/api/v1/billing/settings", admin("PUT", { enabled: false }));
    const { userId } = await createUnit();
    expect(await grantMonthlyAllowances(dependencies, new Date("2027-05-01T00:05:00Z"))).toBe(0);
    expect(await balance(userId)).toBe(0n);
  });
});

describe("hourly billing", () => {
  it("charges red and yellow Units once", async () => {
    const red = await createUnit();
    const yellow = await createUnit();
    const green = await createUnit();
    await creditPaid(red.userId, 1000n);
    await creditPaid(yellow.userId, 1000n);
    await creditPaid(green.userId, 1000n);
    // Yellow from the 50th percentile: 900 messages cost floor(100 · 900² / 2700²) − 1 = 10.
    await grade(HOUR, [
      { unitId: red.unitId, percentile: 90, messages: 1800 },
      { unitId: yellow.unitId, percentile: 60, messages: 900 },
      { unitId: green.unitId, percentile: 0, messages: 1800 },
    ]);

    const first = await app.request(
      "/api/v1/billing/run",
      admin("POST", { hour: HOUR.toISOString() }),
    );
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({
      status: "completed",
      charged: 2,
      total: "109",
      failures: 0,
    });
    const second = await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    expect(second.charged).toBe(0);
    expect(second.total).toBe(0n);

    expect(await balance(red.userId)).toBe(901n);
    expect(await balance(yellow.userId)).toBe(990n);
    expect(await balance(green.userId)).toBe(1000n);
    expect(await usageCharges(red.unitId)).toHaveLength(1);
    await verifyLedger(database.db);
  });

  it("charges nothing while monetisation is off", async () => {
    await app.request("/api/v1/billing/settings", admin("PUT", { enabled: false }));
    const unit = await createUnit();
    await creditPaid(unit.userId, 1000n);
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 90, messages: 1800 }]);
    const run = await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    expect(run.status).toBe("skipped");
    expect(await balance(unit.userId)).toBe(1000n);
    expect(await usageCharges(unit.unitId)).toHaveLength(0);
  });

  it("rejects an hour without grades", async () => {
    const response = await app.request(
      "/api/v1/billing/run",
      admin("POST", { hour: "2027-03-01T09:00:00Z" }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/has no completed grading run/);
  });

  it("stops, revokes, notices and resumes a Unit", async () => {
    const unit = await createUnit();
    await creditPaid(unit.userId, 30n);
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 95, messages: 1800 }]);

    await runUsageBilling(dependencies, { hour: HOUR, trigger: "schedule" });
    expect(await balance(unit.userId)).toBe(0n);
    const [state] = await database.db
      .select()
      .from(unitBillingState)
      .where(eq(unitBillingState.unitId, unit.unitId));
    expect(state).toMatchObject({
      state: "stopped",
      reason: "balance_exhausted",
      brokerApplied: true,
    });
    expect(emqx.allRules).toContainEqual({
      topic: `${DOMAIN}/${unit.nodeId}/#`,
      permission: "deny",
      action: "all",
    });
    expect(emqx.allRules).toContainEqual({
      topic: `${DOMAIN}/+/${unit.unitId}/+/pepeunit`,
      permission: "deny",
      action: "all",
    });
    expect(emqx.allRules).toContainEqual({ topic: "other/#", permission: "deny", action: "all" });
    const notices = await database.db
      .select()
      .from(userNotices)
      .where(eq(userNotices.userId, unit.userId));
    expect(notices).toHaveLength(1);
    expect(notices[0]?.textEn).toMatch(/is stopped: the balance could not pay/);
    expect(notices[0]?.textEn).toMatch(/gets its MQTT access back/);
    expect(notices[0]?.textRu).toMatch(/остановлен/);
    expect(notices[0]?.textRu).toMatch(/доступ к MQTT/);

    // A rerun charges and notices nothing more.
    await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    expect(await usageCharges(unit.unitId)).toHaveLength(1);

    // No resume without money.
    expect(await resumeFundedOwners(dependencies)).toEqual([]);
    await creditPaid(unit.userId, 10n);
    expect(await resumeFundedOwners(dependencies)).toEqual([unit.unitId]);
    const [resumed] = await database.db
      .select()
      .from(unitBillingState)
      .where(eq(unitBillingState.unitId, unit.unitId));
    expect(resumed).toMatchObject({ state: "active", brokerApplied: true });
    expect(emqx.allRules).toEqual([{ topic: "other/#", permission: "deny", action: "all" }]);
    const afterResume = await database.db
      .select()
      .from(userNotices)
      .where(eq(userNotices.userId, unit.userId));
    expect(afterResume.map((notice) => notice.kind).sort()).toEqual([
      "unit_resumed",
      "unit_stopped",
    ]);
    const resumedNotice = afterResume.find((notice) => notice.kind === "unit_resumed");
    expect(resumedNotice?.textEn).toMatch(/is running again: the balance is above zero/);
    expect(resumedNotice?.textRu).toMatch(/снова работает/);
  });

  it("promises no MQTT access without a driver", async () => {
    const unit = await createUnit();
    await stopUnit(
      { db: database.db, access: new OffUnitAccess() },
      {
        unitId: unit.unitId,
        ownerId: unit.userId,
        reason: "load_at_capacity",
        chargeKey: `usage:${unit.unitId}:${HOUR.toISOString()}`,
        charged: 7n,
      },
    );

    const [notice] = await database.db
      .select()
      .from(userNotices)
      .where(eq(userNotices.userId, unit.userId));
    expect(notice?.textEn).toMatch(/reached the instance's capacity.*\(7 tokens\) was charged/);
    expect(notice?.textEn).toMatch(/to resume the Unit\.$/);
    expect(notice?.textEn).not.toMatch(/MQTT/);
    expect(notice?.textRu).toMatch(/чтобы возобновить Юнит\.$/);
    expect(notice?.textRu).not.toMatch(/MQTT/);
  });

  it("retries a failed broker change", async () => {
    const unit = await createUnit();
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 95, messages: 1800 }]);
    emqx.scriptedResponses.push({
      status: 503,
      body: JSON.stringify({ code: "SERVICE_UNAVAILABLE", message: "busy" }),
    });
    await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    const [failed] = await database.db
      .select()
      .from(unitBillingState)
      .where(eq(unitBillingState.unitId, unit.unitId));
    expect(failed?.state).toBe("stopped");
    expect(failed?.brokerApplied).toBe(false);
    expect(failed?.brokerError).toMatch(/503/);
    expect(emqx.allRules).toHaveLength(1);

    await applyPendingBrokerChanges(dependencies);
    const [applied] = await database.db
      .select()
      .from(unitBillingState)
      .where(eq(unitBillingState.unitId, unit.unitId));
    expect(applied?.brokerApplied).toBe(true);
    expect(emqx.allRules).toHaveLength(3);
  });

  it("charges the whole balance at capacity", async () => {
    const unit = await createUnit();
    await creditPaid(unit.userId, 12_345n);
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 99, messages: 3600 }]);
    const run = await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    expect(run.total).toBe(12_345n);
    const [state] = await database.db
      .select()
      .from(unitBillingState)
      .where(eq(unitBillingState.unitId, unit.unitId));
    expect(state?.reason).toBe("load_at_capacity");
  });

  it("resumes a Unit after a faucet grant", async () => {
    const unit = await createUnit();
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 95, messages: 1800 }]);
    await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    expect(emqx.allRules).toHaveLength(3);

    const grant = { key: randomUUID(), tokens: 5, users: [unit.userId], reason: "test grant" };
    const response = await app.request("/api/v1/billing/faucet", admin("POST", grant));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      granted: 1,
      alreadyGranted: 0,
      tokens: "5",
      resumedUnits: [unit.unitId],
    });
    const replay = await app.request("/api/v1/billing/faucet", admin("POST", grant));
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual({
      granted: 0,
      alreadyGranted: 1,
      tokens: "5",
      resumedUnits: [],
    });
    expect(await balance(unit.userId)).toBe(5n);
    expect(emqx.allRules).toHaveLength(1);

    const conflict = await app.request(
      "/api/v1/billing/faucet",
      admin("POST", { ...grant, tokens: 6 }),
    );
    expect(conflict.status).toBe(409);
  });

  it("counts only new grants in a faucet replay", async () => {
    const first = await createUnit();
    const second = await createUnit();
    const grant = { key: randomUUID(), tokens: 3, users: [first.userId], reason: "test grant" };
    await app.request("/api/v1/billing/faucet", admin("POST", grant));

    const widened = await app.request(
      "/api/v1/billing/faucet",
      admin("POST", { ...grant, users: [first.userId, second.userId] }),
    );

    expect(widened.status).toBe(200);
    expect(await widened.json()).toMatchObject({ granted: 1, alreadyGranted: 1, tokens: "3" });
    expect(await balance(first.userId)).toBe(3n);
    expect(await balance(second.userId)).toBe(3n);
  });

  it("rejects a faucet grant to an unknown user", async () => {
    const response = await app.request(
      "/api/v1/billing/faucet",
      admin("POST", { key: "k", tokens: 1, users: [randomUUID()], reason: "x" }),
    );
    expect(response.status).toBe(400);
  });
});

describe("billing job", () => {
  it("bills a graded hour once per check", async () => {
    const unit = await createUnit();
    await creditPaid(unit.userId, 1000n);
    const now = new Date("2027-03-01T11:05:00Z");
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 90, messages: 1800 }]);
    await runBillingCheck({ ...dependencies, clock: () => now });
    await runBillingCheck({ ...dependencies, clock: () => now });
    const runs = await database.db.select().from(billingRuns).where(eq(billingRuns.kind, "usage"));
    expect(runs).toHaveLength(1);
    expect(await usageCharges(unit.unitId)).toHaveLength(1);
    const aggregation = await database.db
      .select()
      .from(billingRuns)
      .where(eq(billingRuns.kind, "aggregation"));
    expect(aggregation.map((run) => run.period.toISOString())).toEqual([
      "2027-02-28T00:00:00.000Z",
    ]);
  });
});

describe("aggregation billing", () => {
  const DAY = new Date("2027-02-28T00:00:00Z");

  async function addNode(unitId: string): Promise<string> {
    const [node] = await database.db
      .insert(unitNodes)
      .values({ unitId, type: "Output", topicName: `agg-${randomUUID()}/pepeunit` })
      .returning();
    return (node as { id: string }).id;
  }

  async function aggregationCharges(userId: string) {
    return (await database.db.select().from(ledgerTransactions)).filter(
      (row) => row.kind === "aggregation" && row.idempotencyKey.includes(userId),
    );
  }

  it("charges topic units above the free ones once", async () => {
    const heavy = await createUnit();
    const light = await createUnit();
    await creditPaid(heavy.userId, 1000n);
    await creditPaid(light.userId, 1000n);
    const second = await addNode(heavy.unitId);
    const empty = await addNode(heavy.unitId);
    const settings = await app.request(
      "/api/v1/billing/settings",
      admin("PUT", { freeAggregationTopics: 1, pricePerAggregationTopic: 7 }),
    );
    expect(settings.status).toBe(200);
    const mebibyte = config.loadReport.aggregationTopicBytes;
    await dependencies.store.writeAggregationSpace({
      at: new Date("2027-02-28T23:00:00Z"),
      unitNodes: [
        // 3.5 blocks round up to 4 topic units; both tables of one UnitNode add up.
        {
          unitNodeId: heavy.nodeId,
          userId: heavy.userId,
          table: "n_last_entry",
          rows: 10,
          bytes: 2 * mebibyte,
        },
        {
          unitNodeId: heavy.nodeId,
          userId: heavy.userId,
          table: "window_entry",
          rows: 5,
          bytes: 1.5 * mebibyte,
        },
        // A small table still counts as one unit, and an empty table counts as zero.
        {
          unitNodeId: second,
          userId: heavy.userId,
          table: "aggregation_entry",
          rows: 3,
          bytes: 100,
        },
        { unitNodeId: empty, userId: heavy.userId, table: "n_last_entry", rows: 0, bytes: 0 },
        {
          unitNodeId: light.nodeId,
          userId: light.userId,
          table: "n_last_entry",
          rows: 1,
          bytes: 10,
        },
        // A UnitNode the catalogue does not know is not charged to anyone.
        { unitNodeId: randomUUID(), userId: null, table: "n_last_entry", rows: 9, bytes: 10 },
      ],
      users: [],
      missingTables: [],
    });

    const first = await runAggregationBilling(dependencies, { day: DAY, trigger: "manual" });
    const again = await runAggregationBilling(dependencies, { day: DAY, trigger: "manual" });

    expect(first.status).toBe("completed");
    expect(again.status).toBe("completed");
    // heavy: 4 + 1 = 5 units, 1 free, 4 × 7 = 28 tokens; light: 1 unit, all free.
    const heavyCharges = await aggregationCharges(heavy.userId);
    expect(heavyCharges).toHaveLength(1);
    expect(heavyCharges[0]?.metadata).toMatchObject({ day: "2027-02-28", topicUnits: 5 });
    expect(await balance(heavy.userId)).toBe(972n);
    expect(await balance(light.userId)).toBe(1000n);
    await verifyLedger(database.db);
  });

  it("charges nothing while monetisation is off", async () => {
    const unit = await createUnit();
    await creditPaid(unit.userId, 100n);
    await app.request("/api/v1/billing/settings", admin("PUT", { enabled: false }));
    await dependencies.store.writeAggregationSpace({
      at: new Date("2027-02-28T23:30:00Z"),
      unitNodes: [
        { unitNodeId: unit.nodeId, userId: unit.userId, table: "n_last_entry", rows: 1, bytes: 10 },
      ],
      users: [],
      missingTables: [],
    });

    const run = await runAggregationBilling(dependencies, { day: DAY, trigger: "manual" });

    expect(run.status).not.toBe("failed");
    expect(await aggregationCharges(unit.userId)).toHaveLength(0);
    expect(await balance(unit.userId)).toBe(100n);
  });
});

describe("aggregation day check", () => {
  it("rejects a day that has not ended or is too old", async () => {
    // The test clock is 2027-03-01T12:30:00Z, so 2027-02-27 and 2027-02-28 can be billed.
    const cases = [
      { hour: "2027-06-01T00:00:00Z", message: /day 2027-06-01T00:00:00.000Z has not ended yet/ },
      {
        hour: "2027-03-01T00:00:00Z",
        message: /latest day that can be billed is 2027-02-28T00:00:00.000Z/,
      },
      { hour: "2020-01-01T00:00:00Z", message: /day 2020-01-01T00:00:00.000Z is too old/ },
      {
        hour: "2027-02-26T00:00:00Z",
        message: /only days from 2027-02-27T00:00:00.000Z to 2027-02-28T00:00:00.000Z/,
      },
      { hour: "2027-02-28T10:00:00Z", message: /is not the start of a UTC day/ },
    ];
    for (const { hour, message } of cases) {
      const response = await app.request(
        "/api/v1/billing/run",
        admin("POST", { kind: "aggregation", hour }),
      );
      const body = (await response.json()) as { error: { message: string } };
      expect(response.status, hour).toBe(400);
      expect(body.error.message, hour).toMatch(/^Invalid body field hour: /);
      expect(body.error.message, hour).toMatch(message);
    }
    expect(await database.db.select().from(billingRuns)).toEqual([]);
  });

  it("bills the two last ended days", async () => {
    const oldest = await app.request(
      "/api/v1/billing/run",
      admin("POST", { kind: "aggregation", hour: "2027-02-27T00:00:00Z" }),
    );
    const latest = await app.request("/api/v1/billing/run", admin("POST", { kind: "aggregation" }));

    expect(oldest.status).toBe(200);
    expect(await oldest.json()).toMatchObject({ period: "2027-02-27T00:00:00.000Z" });
    expect(latest.status).toBe(200);
    expect(await latest.json()).toMatchObject({ period: "2027-02-28T00:00:00.000Z" });
  });
});

describe("billing run list", () => {
  it("lists runs latest first by kind", async () => {
    const unit = await createUnit();
    await creditPaid(unit.userId, 1000n);
    await grade(HOUR, [{ unitId: unit.unitId, percentile: 90, messages: 1800 }]);
    await runUsageBilling(dependencies, { hour: HOUR, trigger: "schedule" });
    await app.request("/api/v1/billing/run", admin("POST", { kind: "aggregation" }));

    const all = await app.request("/api/v1/billing/runs", admin("GET"));
    const usage = await app.request("/api/v1/billing/runs?kind=usage", admin("GET"));
    const limited = await app.request("/api/v1/billing/runs?limit=1", admin("GET"));

    expect(all.status).toBe(200);
    const allItems = ((await all.json()) as { items: Record<string, unknown>[] }).items;
    expect(allItems.map((run) => run.kind)).toEqual(["aggregation", "usage"]);
    expect(allItems[1]).toMatchObject({
      period: HOUR.toISOString(),
      trigger: "schedule",
      status: "completed",
      charged: 1,
      total: "99",
    });
    const usageItems = ((await usage.json()) as { items: { kind: string }[] }).items;
    expect(usageItems.map((run) => run.kind)).toEqual(["usage"]);
    const limitedItems = ((await limited.json()) as { items: { kind: string }[] }).items;
    expect(limitedItems.map((run) => run.kind)).toEqual(["aggregation"]);
  });

  it("rejects an unknown kind and limit", async () => {
    const kind = await app.request("/api/v1/billing/runs?kind=monthly", admin("GET"));
    expect(kind.status).toBe(400);
    expect(JSON.stringify(await kind.json())).toContain("expected one of usage, aggregation");
    const limit = await app.request("/api/v1/billing/runs?limit=0", admin("GET"));
    expect(limit.status).toBe(400);
    expect((await app.request("/api/v1/billing/runs")).status).toBe(401);
  });
});

describe("stopped Unit list", () => {
  interface StoppedUnit {
    unitId: string;
    ownerId: string | null;
    ownerLogin: string | null;
    reason: string;
    since: string;
    chargeKey: string | null;
    brokerApplied: boolean;
    brokerError: string | null;
  }

  /** Reads every page with `limit` items and returns the items. */
  async function listStopped(limit: number): Promise<StoppedUnit[]> {
    const items: StoppedUnit[] = [];
    let path = `/api/v1/billing/stopped-units?limit=${limit}`;
    for (;;) {
      const response = await app.request(path, admin("GET"));
      expect(response.status).toBe(200);
      const page = (await response.json()) as { items: StoppedUnit[]; next: string | null };
      items.push(...page.items);
      if (page.next === null) return items;
      expect(response.headers.get("link")).toContain('rel="next"');
      path = `/api/v1/billing/stopped-units?limit=${limit}&cursor=${page.next}`;
    }
  }

  it("lists stopped Units with owner, reason and broker state", async () => {
    const applied = await createUnit();
    const failed = await createUnit();
    const funded = await createUnit();
    await creditPaid(funded.userId, 1000n);
    await grade(HOUR, [
      { unitId: applied.unitId, percentile: 95, messages: 1800 },
      { unitId: failed.unitId, percentile: 95, messages: 1800 },
      { unitId: funded.unitId, percentile: 95, messages: 1800 },
    ]);
    await runUsageBilling(dependencies, { hour: HOUR, trigger: "manual" });
    await database.db
      .update(unitBillingState)
      .set({ brokerApplied: false, brokerError: "EMQX answered 503" })
      .where(eq(unitBillingState.unitId, failed.unitId));

    const items = await listStopped(1);

    const ids = items.map((item) => item.unitId);
    expect(ids).toEqual([...ids].sort());
    expect(ids).not.toContain(funded.unitId);
    const [login] = await database.db
      .select({ login: users.login })
      .from(users)
      .where(eq(users.id, applied.userId));
    expect(items.find((item) => item.unitId === applied.unitId)).toMatchObject({
      ownerId: applied.userId,
      ownerLogin: login?.login,
      reason: "balance_exhausted",
      chargeKey: `usage:${applied.unitId}:${HOUR.toISOString()}`,
      brokerApplied: true,
      brokerError: null,
    });
    expect(items.find((item) => item.unitId === failed.unitId)).toMatchObject({
      brokerApplied: false,
      brokerError: "EMQX answered 503",
    });
    expect(Number.isNaN(Date.parse(items[0]?.since ?? ""))).toBe(false);
  });

  it("rejects a forged cursor", async () => {
    const cursor = Buffer.from(JSON.stringify({ after: "not-a-uuid" })).toString("base64url");
    const response = await app.request(
      `/api/v1/billing/stopped-units?cursor=${cursor}`,
      admin("GET"),
    );
    expect(response.status).toBe(400);
  });
});

describe("user ledger route", () => {
  interface LedgerBody {
    userId: string;
    balance: { free: string; paid: string; total: string };
    items: {
      kind: string;
      description: string | null;
      amount: string;
      balanceAfter: string;
      changes: { account: string; amount: string }[];
    }[];
    next: string | null;
  }

  it("returns the balance and pages the history", async () => {
    const { userId } = await createUnit();
    await creditPaid(userId, 30n);
    await app.request(
      "/api/v1/billing/faucet",
      admin("POST", { key: randomUUID(), tokens: 5, users: [userId], reason: "welcome" }),
    );
    await spendTokens(database.db, userId, 10n, `test-spend-${randomUUID()}`);

    const first = await app.request(`/api/v1/users/${userId}/ledger?limit=2`, admin("GET"));
    expect(first.status).toBe(200);
    const firstPage = (await first.json()) as LedgerBody;
    expect(firstPage.userId).toBe(userId);
    expect(firstPage.balance).toEqual({ free: "0", paid: "25", total: "25" });
    expect(firstPage.items.map((item) => item.kind)).toEqual(["usage", "faucet"]);
    expect(firstPage.items[0]).toMatchObject({ amount: "-10", balanceAfter: "25" });
    expect(firstPage.items[0]?.changes).toEqual([
      { account: "free", amount: "-5" },
      { account: "paid", amount: "-5" },
    ]);
    expect(firstPage.items[1]).toMatchObject({
      description: "welcome",
      amount: "5",
      balanceAfter: "35",
    });
    expect(firstPage.next).not.toBeNull();
    expect(first.headers.get("link")).toContain('rel="next"');

    const second = await app.request(
      `/api/v1/users/${userId}/ledger?limit=2&cursor=${firstPage.next}`,
      admin("GET"),
    );
    const secondPage = (await second.json()) as LedgerBody;
    expect(secondPage.items.map((item) => [item.kind, item.amount, item.balanceAfter])).toEqual([
      ["test", "30", "30"],
    ]);
    expect(secondPage.next).toBeNull();
  });

  it("answers 404 for an unknown user", async () => {
    const response = await app.request(`/api/v1/users/${randomUUID()}/ledger`, admin("GET"));
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe("user_not_found");
  });

  it("rejects invalid ids, cursors and limits", async () => {
    const { userId } = await createUnit();
    const forged = Buffer.from(JSON.stringify({ after: "x" })).toString("base64url");
    const paths = [
      "/api/v1/users/not-a-uuid/ledger",
      `/api/v1/users/${userId}/ledger?cursor=${forged}`,
      `/api/v1/users/${userId}/ledger?cursor=garbage`,
      `/api/v1/users/${userId}/ledger?limit=501`,
    ];
    for (const path of paths) {
      const response = await app.request(path, admin("GET"));
      expect(response.status, path).toBe(400);
    }
    expect((await app.request(`/api/v1/users/${userId}/ledger`)).status).toBe(401);
  });
});

describe("NodeInfo monetisation", () => {
  it("publishes the settings", async () => {
    await app.request(
      "/api/v1/billing/settings",
      admin("PUT", {
        region: "eu-west",
        regionPrices: { default: 100, "eu-west": 80, "asia-east": 120 },
      }),
    );
    const info = await buildNodeInfo(database.db, config);
    const pepeunit = (info.metadata as { pepeunit: { monetisation: Record<string, unknown> } })
      .pepeunit;
    expect(pepeunit.monetisation).toMatchObject({
      enabled: true,
      monthlyFreeTokens: "50",
      region: "eu-west",
      halfCapacityPrice: "80",
      regionPrices: { "asia-east": "120", default: "100", "eu-west": "80" },
      capacityMps: 1,
      freeMps: 0.1,
      unitYellowPercentile: 50,
      unitRedPercentile: 80,
      instanceStatus: null,
    });
  });

  it("prices a region without a price by default", async () => {
    const response = await app.request(
      "/api/v1/billing/settings",
      admin("PUT", { region: "sa-east", regionPrices: { default: 100, "eu-west": 80 } }),
    );
    expect(response.status).toBe(200);

    const info = await buildNodeInfo(database.db, config);
    const pepeunit = (info.metadata as { pepeunit: { monetisation: Record<string, unknown> } })
      .pepeunit;
    expect(pepeunit.monetisation).toMatchObject({ region: "sa-east", halfCapacityPrice: "100" });
  });
});
