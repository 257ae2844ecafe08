import { randomUUID, webcrypto } from "node:crypto";
import { base64url, CompactSign } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { runUsageBilling } from "../billing/run.ts";
import { updateBillingSettings } from "../billing/settings-store.ts";
import { OffUnitAccess } from "../billing/unit-access.ts";
import { type Config, loadConfig } from "../config.ts";
import { gradingRuns, loadReports, repos, unitGrades, units, users } from "../db/schema/index.ts";
import { runGrading } from "../grading/run.ts";
import { grantMonthlyAllowance, userBalance } from "../money/billing/index.ts";
import { PostgresTimeSeriesStore } from "../timeseries/postgres/store.ts";
import {
  issueLoadReport,
  issueLoadReportIfDue,
  loadReportsAfter,
  type ReportSigningKey,
  readLoadReportPayload,
} from "./chain.ts";
import {
  aggregationLoad,
  LOAD_REPORT_JWS_TYPE,
  type LoadReportPayload,
  type LoadReportPayloadV1,
} from "./payload.ts";
import { sha256Hex } from "./tokens.ts";
import { verifyLoadReportChain, verifyLoadReportChainFromIssuer } from "./verify.ts";

const HOUR = new Date("2027-01-01T10:00:00Z");
const AFTER = new Date("2027-01-01T11:05:00Z");
const ORIGIN = "https://node.example.com";
const KID = `${ORIGIN}/ap/actors/instance#multikey-2`;
const config = loadConfig({ PU_NODE_ENV: "test", PU_NODE_ORIGIN: ORIGIN, PU_NODE_FREE_MPS: "2" });

let database: TestDatabase;
let store: PostgresTimeSeriesStore;
let keys: webcrypto.CryptoKeyPair;
let otherKeys: webcrypto.CryptoKeyPair;

async function generateEd25519(): Promise<webcrypto.CryptoKeyPair> {
  const pair = await webcrypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  return pair as unknown as webcrypto.CryptoKeyPair;
}

function dependencies(privateKey = keys.privateKey, nodeConfig: Config = config) {
  const signingKey: ReportSigningKey = { privateKey, kid: KID };
  return { db: database.db, store, config: nodeConfig, signingKey: async () => signingKey };
}

/** Reads a report that this node issued, which has the current version. */
function readCurrentPayload(jws: string): LoadReportPayload {
  const payload = readLoadReportPayload(jws);
  if (payload.version !== 2) throw new Error(`expected a version 2 report, got ${payload.version}`);
  return payload;
}

/** Issues `count` reports and returns their JWS in order. */
async function issueChain(count: number): Promise<string[]> {
  for (let index = 0; index < count; index++) await issueLoadReport(dependencies(), AFTER);
  return (await loadReportsAfter(database.db, 0, 100)).map((row) => row.jws);
}

/** Replaces the payload of a JWS and keeps its header and signature. */
function withPayload(jws: string, change: (payload: Record<string, unknown>) => void): string {
  const [header, payload, signature] = jws.split(".");
  const decoded = JSON.parse(new TextDecoder().decode(base64url.decode(payload ?? ""))) as Record<
    string,
    unknown
  >;
  change(decoded);
  return `${header}.${base64url.encode(JSON.stringify(decoded))}.${signature}`;
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "load_reports");
  store = new PostgresTimeSeriesStore(database.db);
  await store.migrate();
  keys = await generateEd25519();
  otherKeys = await generateEd25519();
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

beforeEach(async () => {
  await database.pool.query(
    "truncate load_reports, unit_grades, grading_runs, topic_counter_minutes, counter_batches, aggregation_space_minutes, billing_settings, billing_settings_history, billing_runs cascade",
  );
});

describe("issueLoadReport", () => {
  it("chains reports by sequence and hash", async () => {
    const chain = await issueChain(3);
    const rows = await loadReportsAfter(database.db, 0, 100);
    expect(rows.map((row) => row.sequence)).toEqual([1, 2, 3]);
    expect(rows[0]?.previousSha256).toBeNull();
    expect(rows[1]?.previousSha256).toBe(rows[0]?.jwsSha256);
    expect(rows[2]?.previousSha256).toBe(rows[1]?.jwsSha256);

    const payload = readCurrentPayload(chain[2] ?? "");
    expect(payload.sequence).toBe(3);
    expect(payload.version).toBe(2);
    expect(payload.iss).toBe(ORIGIN);
    expect(payload.parameters.freeMps).toBe(2);
    expect(payload.parameters).not.toHaveProperty("pricePerMps");
    expect(payload.load.grading).toBeNull();
    expect(payload.load.aggregation).toBeNull();
  });

  it("carries the latest grading run", async () => {
    await store.writeCounterBatch({
      batchId: randomUUID(),
      tapId: "test",
      rows: [
        {
          minute: new Date(HOUR.getTime() + 60_000),
          topic: "node.example.com/00000000-0000-4000-8000-000000000001/pepeunit",
          domain: "node.example.com",
          domainKind: "local",
          unitNodeId: null,
          unitId: "00000000-0000-4000-8000-000000000001",
          repoId: null,
          messages: 3600,
          bytes: 36000,
        },
      ],
    });
    const run = await runGrading(
      { db: database.db, store, settings: config.grading },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );
    const issued = await issueLoadReportIfDue(dependencies(), AFTER);
    const again = await issueLoadReportIfDue(dependencies(), AFTER);

    expect(issued?.gradingRunId).toBe(run.id);
    expect(again).toBeUndefined();
    const payload = readLoadReportPayload(issued?.jws ?? "");
    expect(payload.load.grading?.status).toBe("green");
    expect(payload.load.grading?.meanMps).toBe(1);
    expect(payload.load.grading?.units.active).toBe(1);
    expect(payload.load.messages.day).toBe(3600);
  });

  it("is append-only in the database", async () => {
    await issueChain(1);
    await expect(database.pool.query("update load_reports set jws = 'x'")).rejects.toThrow(
      /append-only/,
    );
    await expect(database.pool.query("delete from load_reports")).rejects.toThrow(/append-only/);
  });

  it("numbers concurrent reports without gaps", async () => {
    await Promise.all(Array.from({ length: 5 }, () => issueLoadReport(dependencies(), AFTER)));
    const rows = await loadReportsAfter(database.db, 0, 100);
    expect(rows.map((row) => row.sequence)).toEqual([1, 2, 3, 4, 5]);
    const result = await verifyLoadReportChain(
      rows.map((row) => row.jws),
      keys.publicKey,
    );
    expect(result.ok).toBe(true);
  });
});

describe("verifyLoadReportChain", () => {
  it("accepts a valid chain", async () => {
    const chain = await issueChain(4);
    const result = await verifyLoadReportChain(chain, keys.publicKey);
    expect(result).toMatchObject({ ok: true, count: 4, first: 1, last: 4 });
  });

  it("rejects a tampered payload", async () => {
    const chain = await issueChain(3);
    chain[1] = withPayload(chain[1] ?? "", (payload) => {
      (payload.parameters as Record<string, unknown>).halfCapacityPrice = "1";
    });
    const result = await verifyLoadReportChain(chain, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(1);
    expect(result.reason).toMatch(/signature does not match its content/);
  });

  it("rejects a reordered pair", async () => {
    const chain = await issueChain(4);
    const reordered = [chain[0], chain[2], chain[1], chain[3]] as string[];
    const result = await verifyLoadReportChain(reordered, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(1);
    expect(result.sequence).toBe(3);
    expect(result.reason).toMatch(/report 3 follows report 1: a report is missing/);
  });

  it("rejects a swapped neighbour pair", async () => {
    const chain = await issueChain(3);
    const reordered = [chain[1], chain[0], chain[2]] as string[];
    const result = await verifyLoadReportChain(reordered, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(1);
    expect(result.reason).toMatch(/report 1 follows report 2: a report is reordered or repeated/);
  });

  it("rejects a deleted middle report", async () => {
    const chain = await issueChain(5);
    chain.splice(2, 1);
    const result = await verifyLoadReportChain(chain, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(2);
    expect(result.sequence).toBe(4);
    expect(result.reason).toMatch(/report 4 follows report 2: a report is missing/);
  });

  it("rejects a re-signed broken link", async () => {
    const chain = await issueChain(2);
    // Someone with another key rebuilds report 2 with a wrong link: the signature fails first.
    const forged = await issueLoadReport(dependencies(otherKeys.privateKey), AFTER);
    const result = await verifyLoadReportChain([...chain, forged.jws], keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(2);
  });

  it("rejects a hash link that does not match", async () => {
    const chain = await issueChain(3);
    const result = await verifyLoadReportChain([chain[0] ?? "", chain[2] ?? ""], keys.publicKey, {
      anchor: { sequence: 0, sha256: "0".repeat(64) },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(0);
    expect(result.reason).toMatch(/does not link to report 0/);
  });

  it("continues from an anchor", async () => {
    const chain = await issueChain(3);
    const rows = await loadReportsAfter(database.db, 0, 1);
    const anchor = { sequence: 1, sha256: rows[0]?.jwsSha256 ?? "" };
    const result = await verifyLoadReportChain(chain.slice(1), keys.publicKey, { anchor });
    expect(result).toMatchObject({ ok: true, first: 2, last: 3 });
  });

  it("rejects another issuer", async () => {
    const chain = await issueChain(1);
    const result = await verifyLoadReportChain(chain, keys.publicKey, {
      issuer: "https://other.example.com",
    });
    expect(result.ok).toBe(false);
  });
});

describe("verifyLoadReportChainFromIssuer", () => {
  it("fetches the key named by kid", async () => {
    const chain = await issueChain(2);
    const asked: string[] = [];
    const result = await verifyLoadReportChainFromIssuer(chain, new URL(ORIGIN), async (kid) => {
      asked.push(kid.href);
      return keys.publicKey;
    });
    expect(result.ok).toBe(true);
    expect(asked).toEqual([KID]);
  });

  it("rejects a key on another host", async () => {
    const chain = await issueChain(1);
    const result = await verifyLoadReportChainFromIssuer(
      chain,
      new URL("https://other.example.com"),
      async () => keys.publicKey,
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toMatch(/not on https:\/\/other.example.com/);
  });
});

/** Signs `payload` with the node's key and the load report header. */
async function signPayload(payload: unknown): Promise<string> {
  return await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: "EdDSA", kid: KID, typ: LOAD_REPORT_JWS_TYPE })
    .sign(keys.privateKey);
}

/** Stores `count` version-1 reports as an earlier release issued them; returns their JWS. */
async function storeVersion1Reports(count: number): Promise<string[]> {
  const chain: string[] = [];
  let previousSha256: string | null = null;
  for (let sequence = 1; sequence <= count; sequence++) {
    const payload: LoadReportPayloadV1 = {
      type: "pepeunit-load-report",
      version: 1,
      iss: ORIGIN,
      domain: config.pepeunitDomain,
      sequence,
      previousSha256,
      issuedAt: AFTER.toISOString(),
      parameters: {
        currency: "token",
        capacityMps: 4000,
        freeMps: 2,
        pricePerMps: 100,
        freeAggregationTopics: 5,
        pricePerAggregationTopic: 10,
        aggregationTopicBytes: 1_048_576,
      },
      load: {
        windowEnd: AFTER.toISOString(),
        windowSeconds: { month: 2_592_000, week: 604_800, day: 86_400, hour: 3600 },
        mps: { month: 0, week: 0, day: 0, hour: 0 },
        messages: { month: 0, week: 0, day: 0, hour: 0 },
        grading: null,
        aggregation: null,
      },
    };
    const jws = await signPayload(payload);
    const jwsSha256 = sha256Hex(jws);
    await database.db
      .insert(loadReports)
      .values({ sequence, gradingRunId: null, jws, jwsSha256, previousSha256 });
    chain.push(jws);
    previousSha256 = jwsSha256;
  }
  return chain;
}

/** Stores two version-1 reports, then issues two version-2 reports after them. */
async function issueUpgradedChain(): Promise<string[]> {
  await storeVersion1Reports(2);
  await issueLoadReport(dependencies(), AFTER);
  await issueLoadReport(dependencies(), AFTER);
  return (await loadReportsAfter(database.db, 0, 100)).map((row) => row.jws);
}

describe("verifyLoadReportChain across versions", () => {
  it("accepts version 1 then version 2", async () => {
    const chain = await issueUpgradedChain();
    expect(chain.map((jws) => readLoadReportPayload(jws).version)).toEqual([1, 1, 2, 2]);
    expect(readLoadReportPayload(chain[2] ?? "").previousSha256).toBe(sha256Hex(chain[1] ?? ""));

    const result = await verifyLoadReportChain(chain, keys.publicKey, { issuer: ORIGIN });
    expect(result).toMatchObject({ ok: true, count: 4, first: 1, last: 4 });
    const fromIssuer = await verifyLoadReportChainFromIssuer(
      chain,
      new URL(ORIGIN),
      async () => keys.publicKey,
    );
    expect(fromIssuer.ok).toBe(true);
  });

  it("rejects a tampered version 1 report", async () => {
    const chain = await issueUpgradedChain();
    chain[1] = withPayload(chain[1] ?? "", (payload) => {
      (payload.parameters as Record<string, unknown>).pricePerMps = 1;
    });
    const result = await verifyLoadReportChain(chain, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(1);
    expect(result.reason).toMatch(/signature does not match its content/);
  });

  it("rejects a tampered version 2 report", async () => {
    const chain = await issueUpgradedChain();
    chain[2] = withPayload(chain[2] ?? "", (payload) => {
      (payload.parameters as Record<string, unknown>).halfCapacityPrice = "1";
    });
    const result = await verifyLoadReportChain(chain, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(2);
    expect(result.reason).toMatch(/signature does not match its content/);
  });

  it("rejects a deleted last version 1 report", async () => {
    const chain = await issueUpgradedChain();
    chain.splice(1, 1);
    const result = await verifyLoadReportChain(chain, keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(1);
    expect(result.sequence).toBe(3);
    expect(result.reason).toMatch(/report 3 follows report 1: a report is missing/);
  });

  it("rejects an unsupported version", async () => {
    const [first] = await storeVersion1Reports(1);
    const next = await signPayload({
      ...readLoadReportPayload(first ?? ""),
      version: 3,
      sequence: 2,
      previousSha256: sha256Hex(first ?? ""),
    });
    const result = await verifyLoadReportChain([first ?? "", next], keys.publicKey);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.index).toBe(1);
    expect(result.reason).toMatch(/unsupported version 3; this verifier reads versions 1 and 2/);
  });
});

// Capacity 2 MPS is Q = 7200 messages per hour, and 0.5 MPS free is F = 1800.
const pricedConfig = loadConfig({
  PU_NODE_ENV: "test",
  PU_NODE_ORIGIN: ORIGIN,
  PU_NODE_CAPACITY_MPS: "2",
  PU_NODE_FREE_MPS: "0.5",
  PU_NODE_HALF_CAPACITY_PRICE: "250",
});

type PriceParameters = LoadReportPayload["parameters"];

/** Computes Ĉ(x) = floor(K · x² / (Q − x)²) from the report alone, as a verifier does. */
function cumulativePriceFromReport(load: bigint, parameters: PriceParameters): bigint | null {
  const capacity = BigInt(parameters.capacityMessagesPerHour);
  if (load >= capacity) return null;
  const halfCapacityPrice = BigInt(parameters.halfCapacityPrice);
  return (halfCapacityPrice * load * load) / ((capacity - load) * (capacity - load));
}

/** Computes a Unit's hourly charge from the report alone: Ĉ(L) − Ĉ(F), or 0 up to F. */
function chargeFromReport(messages: bigint, parameters: PriceParameters): string {
  const free = BigInt(parameters.freeMessagesPerHour);
  if (messages <= free) return "0";
  const upper = cumulativePriceFromReport(messages, parameters);
  const lower = cumulativePriceFromReport(free, parameters);
  if (upper === null || lower === null) return "unbounded";
  return (upper - lower).toString();
}

async function issuePricedReport(): Promise<LoadReportPayload> {
  const row = await issueLoadReport(dependencies(keys.privateKey, pricedConfig), AFTER);
  return readCurrentPayload(row.jws);
}

/** Creates a user who owns one Unit, with `tokens` free tokens. */
async function createFundedUnit(tokens: bigint): Promise<{ userId: string; unitId: string }> {
  const [user] = await database.db
    .insert(users)
    .values({ login: `report-${randomUUID()}` })
    .returning();
  const userId = (user as { id: string }).id;
  const [repo] = await database.db
    .insert(repos)
    .values({
      name: `report-${randomUUID()}`,
      repositoryUrl: "https://git.example.com/r",
      platform: "Gitlab",
    })
    .returning();
  const [unit] = await database.db
    .insert(units)
    .values({ repoId: (repo as { id: string }).id, ownerId: userId, name: `u-${randomUUID()}` })
    .returning();
  await grantMonthlyAllowance(database.db, userId, "2027-01", tokens);
  return { userId, unitId: (unit as { id: string }).id };
}

describe("report parameters", () => {
  it("follow the billing settings", async () => {
    const before = await issuePricedReport();
    expect(before.parameters).toMatchObject({
      currency: "token",
      enabled: false,
      region: "default",
      curve: {
        name: "pepeunit-progressive-v1",
        formula: "C(L) = K * L^2 / (Q - L)^2",
        loadUnit: "messages per hour",
        rounding: "floor",
      },
      capacityMps: 2,
      capacityMessagesPerHour: 7200,
      halfCapacityPrice: "250",
      freeMps: 0.5,
      freeMessagesPerHour: 1800,
      // Ĉ(5400) − Ĉ(1800) = 250 · 9 − floor(250 / 9) = 2250 − 27.
      firstMpsAboveFreePrice: "2223",
      freeAggregationTopics: 5,
      pricePerAggregationTopic: "10",
    });

    await updateBillingSettings(
      database.db,
      pricedConfig,
      {
        enabled: true,
        region: "eu-west",
        regionPrices: { default: "250", "eu-west": "400" },
        freeMps: 1,
        unitYellowPercentile: 60,
        unitRedPercentile: 90,
        freeAggregationTopics: 2,
        pricePerAggregationTopic: "3",
      },
      "test",
    );
    const regional = await issuePricedReport();
    expect(regional.parameters).toMatchObject({
      enabled: true,
      region: "eu-west",
      halfCapacityPrice: "400",
      freeMps: 1,
      freeMessagesPerHour: 3600,
      // F + 3600 = 7200 reaches Q, so the first MPS above the free one has no finite price.
      firstMpsAboveFreePrice: "unbounded",
      unitYellowPercentile: 60,
      unitRedPercentile: 90,
      freeAggregationTopics: 2,
      pricePerAggregationTopic: "3",
    });
    expect(Date.parse(regional.parameters.settingsUpdatedAt)).toBeGreaterThan(
      Date.parse(before.parameters.settingsUpdatedAt),
    );

    await updateBillingSettings(
      database.db,
      pricedConfig,
      { instancePrice: "40", freeMps: 0.25 },
      "test",
    );
    const own = await issuePricedReport();
    expect(own.parameters.halfCapacityPrice).toBe("40");
    // Ĉ(4500) − Ĉ(900) = floor(40 · 4500² / 2700²) − floor(40 · 900² / 6300²) = 111 − 0.
    expect(own.parameters.firstMpsAboveFreePrice).toBe("111");

    // The chain keeps what earlier reports promised.
    const first = readCurrentPayload((await loadReportsAfter(database.db, 0, 1))[0]?.jws ?? "");
    expect(first.parameters.halfCapacityPrice).toBe("250");
  });

  it("give the charges that billing makes", async () => {
    await updateBillingSettings(
      database.db,
      pricedConfig,
      { enabled: true, region: "eu-west", regionPrices: { default: "250", "eu-west": "300" } },
      "test",
    );
    const report = await issuePricedReport();

    // One MPS above the free load, a load between, and a load below the free one.
    const loads = [5400, 3000, 1000];
    const owners = [];
    for (const messages of loads) {
      owners.push({ ...(await createFundedUnit(1_000_000n)), messages });
    }
    const [run] = await database.db
      .insert(gradingRuns)
      .values({
        hour: HOUR,
        trigger: "manual",
        status: "completed",
        instanceStatus: "green",
        parameters: {},
        figures: null,
        finishedAt: AFTER,
      })
      .returning();
    await database.db.insert(unitGrades).values(
      owners.map((owner) => ({
        hour: HOUR,
        unitId: owner.unitId,
        runId: (run as { id: string }).id,
        colour: "red" as const,
        percentile: 95,
        meanMps: owner.messages / 3600,
        peakMps: owner.messages / 3600,
        messages: owner.messages,
        bytes: owner.messages * 10,
        activeSamples: 12,
        hot: false,
      })),
    );

    const billed = await runUsageBilling(
      { db: database.db, config: pricedConfig, store, access: new OffUnitAccess() },
      { hour: HOUR, trigger: "manual" },
    );
    expect(billed.status).toBe("completed");

    const charged = [];
    for (const owner of owners) {
      charged.push((1_000_000n - (await userBalance(database.db, owner.userId))).toString());
    }
    const expected = loads.map((messages) => chargeFromReport(BigInt(messages), report.parameters));
    expect(charged).toEqual(expected);
    // Ĉ(5400) − Ĉ(1800) = 300 · 9 − floor(300 / 9) = 2700 − 33.
    expect(expected).toEqual(["2667", "120", "0"]);
    expect(report.parameters.firstMpsAboveFreePrice).toBe(charged[0]);
  });
});

describe("aggregationLoad", () => {
  const at = new Date("2027-01-02T00:00:00Z");
  const snapshot = {
    at,
    unitNodes: [
      { unitNodeId: "a", userId: null, table: "window_entry" as const, rows: 10, bytes: 100 },
      { unitNodeId: "a", userId: null, table: "n_last_entry" as const, rows: 5, bytes: 2_500_000 },
      { unitNodeId: "b", userId: null, table: "aggregation_entry" as const, rows: 1, bytes: 10 },
      { unitNodeId: "c", userId: null, table: "window_entry" as const, rows: 0, bytes: 0 },
    ],
    users: [],
    missingTables: [],
  };

  it("counts topic units by storage", () => {
    const load = aggregationLoad(snapshot, 1_048_576, null);
    expect(load.topics).toBe(2);
    // a: 2 500 100 bytes is 3 units of 1 MiB; b: 1 unit.
    expect(load.topicUnits).toBe(4);
    expect(load.rows).toBe(16);
    expect(load.rowsPerDay).toBeNull();
  });

  it("derives rows per day from the previous report", () => {
    const previous = aggregationLoad(
      {
        ...snapshot,
        at: new Date("2027-01-01T12:00:00Z"),
        unitNodes: snapshot.unitNodes.slice(0, 1),
      },
      1_048_576,
      null,
    );
    const load = aggregationLoad(snapshot, 1_048_576, previous);
    // 16 − 10 rows in half a day.
    expect(load.rowsPerDay).toBe(12);
  });
});
