import { randomUUID, webcrypto } from "node:crypto";
import { base64url } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { loadConfig } from "../config.ts";
import { runGrading } from "../grading/run.ts";
import { PostgresTimeSeriesStore } from "../timeseries/postgres/store.ts";
import {
  issueLoadReport,
  issueLoadReportIfDue,
  loadReportsAfter,
  type ReportSigningKey,
  readLoadReportPayload,
} from "./chain.ts";
import { aggregationLoad } from "./payload.ts";
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

function dependencies(privateKey = keys.privateKey) {
  const signingKey: ReportSigningKey = { privateKey, kid: KID };
  return { db: database.db, store, config, signingKey: async () => signingKey };
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
    "truncate load_reports, unit_grades, grading_runs, topic_counter_minutes, counter_batches, aggregation_space_minutes cascade",
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

    const payload = readLoadReportPayload(chain[2] ?? "");
    expect(payload.sequence).toBe(3);
    expect(payload.iss).toBe(ORIGIN);
    expect(payload.parameters.freeMps).toBe(2);
    expect(payload.parameters.pricePerMps).toBe(100);
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
      (payload.parameters as Record<string, unknown>).pricePerMps = 1;
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
