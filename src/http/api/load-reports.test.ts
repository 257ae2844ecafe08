import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { fetchReportKey, loadReportSigningKey } from "../../../federation/load-report-keys.ts";
import { startTestNode, type TestNode } from "../../../test/nodes.ts";
import { reportTokens } from "../../db/schema/index.ts";
import { issueLoadReport } from "../../reports/chain.ts";
import { createReportToken, sha256Hex } from "../../reports/tokens.ts";
import { verifyLoadReportChainFromIssuer } from "../../reports/verify.ts";

let issuer: TestNode;
let verifier: TestNode;

interface ReportJson {
  sequence: number;
  jws: string;
  sha256: string;
  previousSha256: string | null;
  payload: { sequence: number; iss: string; version: number; parameters: Record<string, unknown> };
}

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  [issuer, verifier] = await Promise.all([
    // Capacity 2 MPS is Q = 7200 messages per hour, so the published prices are not 0.
    startTestNode(adminUrl, "reportissuer", {
      PU_NODE_CAPACITY_MPS: "2",
      PU_NODE_FREE_MPS: "0.5",
      PU_NODE_HALF_CAPACITY_PRICE: "250",
    }),
    startTestNode(adminUrl, "reportverifier"),
  ]);
});

afterAll(async () => {
  await Promise.all([issuer?.close(), verifier?.close()]);
});

function adminFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${issuer.adminToken}`);
  if (init.body !== undefined) headers.set("content-type", "application/json");
  return fetch(new URL(path, issuer.origin), { ...init, headers });
}

function scraperFetch(path: string, token?: string): Promise<Response> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  return fetch(new URL(path, issuer.origin), { headers });
}

async function createToken(name: string): Promise<{ id: string; token: string }> {
  const response = await adminFetch("/api/v1/report-tokens", {
    method: "POST",
    body: JSON.stringify({ name }),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string; token: string };
}

async function issueReports(count: number): Promise<void> {
  const { db, config, timeSeries } = issuer.node.services;
  for (let index = 0; index < count; index++) {
    await issueLoadReport({
      db,
      store: timeSeries,
      config,
      signingKey: () => loadReportSigningKey(db, config.origin),
    });
  }
}

describe("report tokens", () => {
  it("are stored hashed and listed without the token", async () => {
    const created = await createToken("scraper.example.com");
    expect(created.token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const [stored] = await issuer.node.services.db.select().from(reportTokens);
    expect(stored?.tokenSha256).toBe(sha256Hex(created.token));

    const list = (await (await adminFetch("/api/v1/report-tokens")).json()) as {
      items: Record<string, unknown>[];
    };
    expect(list.items.some((item) => item.id === created.id)).toBe(true);
    expect(JSON.stringify(list)).not.toContain(created.token);
  });

  it("need the admin token to create", async () => {
    const response = await fetch(new URL("/api/v1/report-tokens", issuer.origin), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "x" }),
    });
    expect(response.status).toBe(401);
  });

  it("reject a missing or wrong token with 401", async () => {
    const missing = await scraperFetch("/api/v1/load_limit");
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toContain("Bearer");

    const wrong = await scraperFetch("/api/v1/load_limit", "not-a-token-of-this-node");
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe("invalid_token");
  });

  it("reject a revoked token with 401", async () => {
    const created = await createToken("revoked.example.com");
    const revoke = await adminFetch(`/api/v1/report-tokens/${created.id}`, { method: "DELETE" });
    expect(revoke.status).toBe(200);
    expect(((await revoke.json()) as { revokedAt: string | null }).revokedAt).not.toBeNull();

    const response = await scraperFetch("/api/v1/load_limit", created.token);
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/revoked/);
  });

  it("reject a token without the scope with 403", async () => {
    const { token } = await createReportToken(issuer.node.services.db, {
      name: "no-scope",
      scopes: [],
    });
    const response = await scraperFetch("/api/v1/load_limit", token);
    expect(response.status).toBe(403);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      "insufficient_scope",
    );
  });

  it("return 404 for revoking an unknown token", async () => {
    const response = await adminFetch(
      "/api/v1/report-tokens/00000000-0000-4000-8000-000000000000",
      { method: "DELETE" },
    );
    expect(response.status).toBe(404);
  });
});

describe("GET /load_limit", () => {
  it("verifies on another node", async () => {
    const { token } = await createToken("verifier");
    const before = await scraperFetch("/api/v1/load_limit", token);
    expect(before.status).toBe(404);

    // The worker may have issued a report for the hour before the test started.
    await issueReports(3);
    const latest = (await (await scraperFetch("/api/v1/load_limit", token)).json()) as {
      items: ReportJson[];
    };
    expect(latest.items).toHaveLength(1);

    const response = await scraperFetch("/api/v1/load_limit?after=0", token);
    expect(response.status).toBe(200);
    const { items } = (await response.json()) as { items: ReportJson[] };
    const count = items.length;
    expect(count).toBeGreaterThanOrEqual(3);
    expect(items.map((item) => item.sequence)).toEqual(
      Array.from({ length: count }, (_, index) => index + 1),
    );
    expect(items.at(-1)?.sequence).toBe(latest.items[0]?.sequence);
    expect(items[1]?.previousSha256).toBe(items[0]?.sha256);
    expect(items[0]?.payload.iss).toBe(issuer.origin);

    // The verifier fetches the issuer's instance actor over HTTP for the public key.
    const federation = verifier.node.federation;
    const verifierOrigin = new URL(verifier.origin);
    const result = await verifyLoadReportChainFromIssuer(
      items.map((item) => item.jws),
      new URL(issuer.origin),
      (kid) => fetchReportKey(federation, verifierOrigin, kid),
    );
    expect(result).toMatchObject({ ok: true, count, first: 1, last: count });

    const broken = await verifyLoadReportChainFromIssuer(
      [items[0]?.jws ?? "", items[2]?.jws ?? ""],
      new URL(issuer.origin),
      (kid) => fetchReportKey(federation, verifierOrigin, kid),
    );
    expect(broken.ok).toBe(false);
    if (broken.ok) return;
    expect(broken.reason).toMatch(/report 3 follows report 1: a report is missing/);
  });

  it("rejects a key of another node", async () => {
    await issueReports(1);
    const { token } = await createToken("other-key");
    const { items } = (await (await scraperFetch("/api/v1/load_limit", token)).json()) as {
      items: ReportJson[];
    };
    const verifierKey = await loadReportSigningKey(
      verifier.node.services.db,
      new URL(verifier.origin),
    );
    // The verifier's own actor key cannot verify the issuer's reports.
    const federation = verifier.node.federation;
    const result = await verifyLoadReportChainFromIssuer(
      items.map((item) => item.jws),
      new URL(issuer.origin),
      () => fetchReportKey(federation, new URL(verifier.origin), new URL(verifierKey.kid)),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toMatch(/signature does not match/);
  });

  it("rejects an invalid after", async () => {
    const { token } = await createToken("bad-query");
    const response = await scraperFetch("/api/v1/load_limit?after=-1", token);
    expect(response.status).toBe(400);
  });
});

describe("published prices", () => {
  async function latestParameters(token: string): Promise<Record<string, unknown>> {
    await issueReports(1);
    const response = await scraperFetch("/api/v1/load_limit", token);
    expect(response.status).toBe(200);
    const { items } = (await response.json()) as { items: ReportJson[] };
    expect(items[0]?.payload.version).toBe(2);
    return items[0]?.payload.parameters ?? {};
  }

  async function nodeInfoMonetisation(): Promise<Record<string, unknown>> {
    const response = await fetch(new URL("/nodeinfo/2.1", issuer.origin));
    expect(response.status).toBe(200);
    const info = (await response.json()) as {
      metadata: { pepeunit: { monetisation: Record<string, unknown> } };
    };
    return info.metadata.pepeunit.monetisation;
  }

  async function changeSettings(change: Record<string, unknown>): Promise<void> {
    const response = await adminFetch("/api/v1/billing/settings", {
      method: "PUT",
      body: JSON.stringify(change),
    });
    expect(response.status).toBe(200);
  }

  it("match NodeInfo after each settings change", async () => {
    const { token } = await createToken("prices");

    await changeSettings({
      enabled: true,
      region: "eu-west",
      regionPrices: { default: "250", "eu-west": "300" },
      freeAggregationTopics: 2,
      pricePerAggregationTopic: "3",
    });
    const regional = await latestParameters(token);
    expect(regional).toMatchObject({
      enabled: true,
      region: "eu-west",
      halfCapacityPrice: "300",
      capacityMessagesPerHour: 7200,
      freeMessagesPerHour: 1800,
      // Ĉ(5400) − Ĉ(1800) = 300 · 9 − floor(300 / 9) = 2700 − 33.
      firstMpsAboveFreePrice: "2667",
      freeAggregationTopics: 2,
      pricePerAggregationTopic: "3",
    });
    const regionalInfo = await nodeInfoMonetisation();
    for (const [field, value] of Object.entries(regional)) {
      expect(regionalInfo[field], field).toEqual(value);
    }

    await changeSettings({ instancePrice: "40", freeMps: 0.25 });
    const own = await latestParameters(token);
    expect(own).toMatchObject({
      halfCapacityPrice: "40",
      freeMps: 0.25,
      freeMessagesPerHour: 900,
      // Ĉ(4500) − Ĉ(900) = floor(40 · 4500² / 2700²) − floor(40 · 900² / 6300²) = 111 − 0.
      firstMpsAboveFreePrice: "111",
    });
    const ownInfo = await nodeInfoMonetisation();
    for (const [field, value] of Object.entries(own)) {
      expect(ownInfo[field], field).toEqual(value);
    }
    expect(ownInfo.regionPrices).toEqual({ default: "250", "eu-west": "300" });
  });
});
