import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { inboxGuard } from "../../federation/inbox-guard.ts";
import { findFreePort } from "../../test/global-setup.ts";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import type { BanThresholds } from "../config.ts";
import { bans } from "../db/schema/index.ts";
import type { Violation } from "./bans-types.ts";
import { createInboxDetectors } from "./detectors.ts";
import { SlidingWindowCounter } from "./detectors-window.ts";
import type { DatabasePolicyEngine } from "./engine.ts";
import { createPolicyGate } from "./gate.ts";
import { InboxRateLimiter } from "./rate-limit.ts";

const START = new Date("2027-03-01T00:00:00Z").getTime();
const SECOND = 1000;

describe("SlidingWindowCounter", () => {
  it("reports the crossing once and starts over", () => {
    const counter = new SlidingWindowCounter<number>({ limit: 3, windowMs: 60 * SECOND });
    expect(counter.add("a", START, 1)).toBeUndefined();
    expect(counter.add("a", START + SECOND, 2)).toBeUndefined();
    const crossing = counter.add("a", START + 2 * SECOND, 3);
    expect(crossing).toEqual({
      count: 3,
      firstAt: START,
      lastAt: START + 2 * SECOND,
      samples: [1, 2, 3],
    });
    expect(counter.add("a", START + 3 * SECOND, 4)).toBeUndefined();
    expect(counter.count("a", START + 3 * SECOND)).toBe(1);
  });

  it("forgets events that left the window", () => {
    const counter = new SlidingWindowCounter<null>({ limit: 3, windowMs: 60 * SECOND });
    counter.add("a", START, null);
    counter.add("a", START + SECOND, null);
    expect(counter.add("a", START + 62 * SECOND, null)).toBeUndefined();
    expect(counter.count("a", START + 62 * SECOND)).toBe(1);
    expect(counter.count("a", START + 200 * SECOND)).toBe(0);
  });

  it("counts keys separately", () => {
    const counter = new SlidingWindowCounter<null>({ limit: 2, windowMs: 60 * SECOND });
    expect(counter.add("a", START, null)).toBeUndefined();
    expect(counter.add("b", START, null)).toBeUndefined();
    expect(counter.add("a", START, null)?.count).toBe(2);
  });

  it("keeps at most maxKeys keys", () => {
    const counter = new SlidingWindowCounter<null>({ limit: 5, windowMs: 60 * SECOND, maxKeys: 2 });
    counter.add("a", START, null);
    counter.add("b", START, null);
    counter.add("c", START, null);
    expect(counter.size).toBe(2);
    expect(counter.count("a", START)).toBe(0);
    expect(counter.count("c", START)).toBe(1);
  });

  it("keeps the newest samples", () => {
    const counter = new SlidingWindowCounter<number>({
      limit: 4,
      windowMs: 60 * SECOND,
      maxSamples: 2,
    });
    for (const value of [1, 2, 3]) counter.add("a", START, value);
    expect(counter.add("a", START, 4)?.samples).toEqual([3, 4]);
  });
});

const THRESHOLDS: BanThresholds = {
  rateLimited: { count: 3, windowSeconds: 600 },
  signatureFailures: { count: 3, windowSeconds: 3600 },
  invalidPayloads: { count: 3, windowSeconds: 3600 },
  topicBansForDomain: { count: 3, windowSeconds: 86_400 },
};

/**
 * The inbox stack of the HTTP app in front of a stand-in for Fedify that returns 401 when the
 * request carries `x-test-verify: fail` and 202 otherwise.
 */
function detectedApp(thresholds: BanThresholds = THRESHOLDS, burst = 100) {
  let now = START;
  const reported: Violation[] = [];
  const detectors = createInboxDetectors({
    thresholds,
    report: async (violation) => {
      reported.push(violation);
    },
    now: () => new Date(now),
    clientAddress: () => "192.0.2.7",
  });
  const gate = createPolicyGate({
    engine: { decide: () => ({ action: "allow" }) },
    limiter: new InboxRateLimiter({ capacity: burst, refillPerMinute: 1 }),
    clientAddress: () => "192.0.2.7",
    now: () => new Date(now),
  });
  const app = new Hono();
  app.use(detectors.middleware);
  app.post("/ap/*", bodyLimit({ maxSize: 100, onError: (c) => c.text("too large", 413) }));
  app.use(gate.inbox);
  app.use(inboxGuard());
  app.post("/ap/*", (c) =>
    c.req.header("x-test-verify") === "fail" ? c.text("invalid signature", 401) : c.body(null, 202),
  );
  return {
    app,
    detectors,
    reported,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function delivery(host: string, options: { body?: string; type?: string; verify?: string } = {}) {
  const headers: Record<string, string> = {
    "content-type": options.type ?? "application/activity+json",
    signature: `keyId="https://${host}/ap/actors/instance#main-key",algorithm="rsa-sha256",signature="x"`,
  };
  if (options.verify !== undefined) headers["x-test-verify"] = options.verify;
  return { method: "POST", headers, body: options.body ?? '{"type":"Create"}' };
}

async function send(app: Hono, times: number, host: string, options = {}): Promise<number[]> {
  const statuses: number[] = [];
  for (let index = 0; index < times; index++) {
    statuses.push((await app.request("/ap/inbox", delivery(host, options))).status);
  }
  return statuses;
}

describe("inbox detectors", () => {
  it("report signature failures once at the threshold", async () => {
    const { app, detectors, reported, advance } = detectedApp();
    const statuses: number[] = [];
    for (let index = 0; index < 5; index++) {
      statuses.push(...(await send(app, 1, "Bad.Example:8443", { verify: "fail" })));
      advance(SECOND);
    }
    await detectors.settled();
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    expect(reported).toHaveLength(1);
    const [violation] = reported;
    expect(violation?.subject).toEqual({ kind: "domain", domain: "bad.example" });
    expect(violation?.condition).toBe("signature_failures");
    expect(violation?.evidence).toMatchObject({
      count: 3,
      limit: 3,
      windowSeconds: 3600,
      firstSeenAt: new Date(START).toISOString(),
      lastSeenAt: new Date(START + 2 * SECOND).toISOString(),
    });
    expect(violation?.evidence.samples[0]).toMatchObject({
      status: 401,
      path: "/ap/inbox",
      claimedHost: "bad.example:8443",
      address: "192.0.2.7",
    });
    expect(violation?.now).toEqual(new Date(START + 2 * SECOND));
  });

  it("report 429 rate_limited answers as inbound_rate", async () => {
    const { app, detectors, reported } = detectedApp(THRESHOLDS, 2);
    const statuses = await send(app, 6, "busy.example");
    await detectors.settled();
    expect(statuses).toEqual([202, 202, 429, 429, 429, 429]);
    expect(reported.map((violation) => violation.condition)).toEqual(["inbound_rate"]);
    expect(reported[0]?.evidence.count).toBe(3);
  });

  it("report 400, 413 and 415 answers as invalid_payloads", async () => {
    const { app, detectors, reported } = detectedApp();
    const statuses = [
      ...(await send(app, 1, "junk.example", { body: "not json" })),
      ...(await send(app, 1, "junk.example", {
        body: `{"type":"Create","x":"${"a".repeat(200)}"}`,
      })),
      ...(await send(app, 1, "junk.example", { type: "text/plain" })),
    ];
    await detectors.settled();
    expect(statuses).toEqual([400, 413, 415]);
    expect(reported.map((violation) => violation.condition)).toEqual(["invalid_payloads"]);
    const samples = reported[0]?.evidence.samples ?? [];
    expect(samples.map((sample) => sample.status)).toEqual([400, 413, 415]);
  });

  it("ignore accepted and unsigned requests", async () => {
    const { app, detectors, reported } = detectedApp();
    await send(app, 2, "good.example");
    for (let index = 0; index < 4; index++) {
      await app.request("/ap/inbox", {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: "x",
      });
    }
    await detectors.settled();
    expect(reported).toEqual([]);
  });

  it("forget failures outside the window", async () => {
    const { app, detectors, reported, advance } = detectedApp();
    await send(app, 2, "slow.example", { verify: "fail" });
    advance(3700 * SECOND);
    await send(app, 2, "slow.example", { verify: "fail" });
    await detectors.settled();
    expect(reported).toEqual([]);
  });

  it("skip a condition whose count is 0", async () => {
    const { app, detectors, reported } = detectedApp({
      ...THRESHOLDS,
      signatureFailures: { count: 0, windowSeconds: 3600 },
    });
    await send(app, 5, "bad.example", { verify: "fail" });
    await detectors.settled();
    expect(reported).toEqual([]);
  });
});

describe("detectors in a running node", () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startTestNode(inject("postgresAdminUrl"), "ban-detectors", {
      PU_NODE_BAN_SIGNATURE_FAILURES: "3",
    });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
  });

  it("bans a host after failed signatures", async () => {
    // The key id points at a loopback port with no server, so Fedify cannot fetch the key.
    const closedPort = await findFreePort();
    const keyId = `http://127.0.0.1:${closedPort}/ap/actors/instance#main-key`;
    const post = () =>
      fetch(`${node.origin}/ap/inbox`, {
        method: "POST",
        headers: {
          "content-type": "application/activity+json",
          date: new Date().toUTCString(),
          signature: `keyId="${keyId}",algorithm="rsa-sha256",headers="(request-target) host date",signature="AAAA"`,
        },
        body: JSON.stringify({
          "@context": "https://www.w3.org/ns/activitystreams",
          id: `http://127.0.0.1:${closedPort}/activities/1`,
          type: "Create",
          actor: `http://127.0.0.1:${closedPort}/ap/actors/instance`,
          object: { id: `http://127.0.0.1:${closedPort}/notes/1`, type: "Note", content: "x" },
        }),
      });
    const statuses: number[] = [];
    for (let index = 0; index < 3; index++) statuses.push((await post()).status);
    expect(statuses).toEqual([401, 401, 401]);

    const { db, policy } = node.node.services;
    let rows = await db.select().from(bans);
    for (let attempt = 0; attempt < 100 && rows.length === 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      rows = await db.select().from(bans);
    }
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      kind: "domain",
      domain: "127.0.0.1",
      condition: "signature_failures",
      level: 1,
    });
    expect(rows[0]?.evidence).toMatchObject({ count: 3, limit: 3 });

    await (policy as DatabasePolicyEngine).reload();
    const blocked = await post();
    expect(blocked.status).toBe(403);
    expect(((await blocked.json()) as { error: { code: string } }).error.code).toBe(
      "domain_blocked",
    );
  });
});
