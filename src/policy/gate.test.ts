import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createPolicyGate, MAX_COUNTED_PAIRS, type PolicyGateOptions } from "./gate.ts";
import { InboxRateLimiter } from "./rate-limit.ts";
import type { PolicyDecision, PolicyEngine } from "./types.ts";

const NOW = new Date("2027-01-01T00:00:00Z");

/** Suspends the hosts listed; everything else is allowed. */
function engineSuspending(...hosts: string[]): PolicyEngine {
  return {
    decide(host: string): PolicyDecision {
      if (!hosts.includes(host)) return { action: "allow" };
      return {
        action: "suspend",
        reason: "spam wave",
        source: { kind: "rule", id: "rule-1" },
        expiresAt: null,
      };
    },
  };
}

/** Builds a Hono app with the gate in front of a handler that records which requests reach it. */
function gatedApp(options: Partial<PolicyGateOptions> = {}) {
  const gate = createPolicyGate({
    engine: options.engine ?? engineSuspending("blocked.example"),
    limiter: options.limiter ?? new InboxRateLimiter({ capacity: 100, refillPerMinute: 100 }),
    clientAddress: options.clientAddress ?? ((c) => c.req.header("x-test-address")),
    now: () => NOW,
  });
  const reached: string[] = [];
  const app = new Hono();
  app.use(gate.documents);
  app.use(gate.inbox);
  app.all("*", (c) => {
    reached.push(`${c.req.method} ${c.req.path}`);
    return c.text("passed", 202);
  });
  return { gate, app, reached };
}

function signedBy(host: string): Record<string, string> {
  return {
    signature: `keyId="https://${host}/ap/actors/instance#main-key",algorithm="rsa-sha256",signature="x"`,
  };
}

function post(headers: Record<string, string> = {}) {
  return {
    method: "POST",
    headers: { "content-type": "application/activity+json", ...headers },
    body: "{}",
  };
}

describe("policy gate inbox", () => {
  it("rejects a suspended host with 403", async () => {
    const { app, reached } = gatedApp();
    const response = await app.request("/ap/inbox", post(signedBy("blocked.example")));
    expect(response.status).toBe(403);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("domain_blocked");
    expect(body.error.message).toContain("blocked.example");
    expect(body.error.message).not.toContain("spam wave");
    expect(reached).toEqual([]);
  });

  it("rejects on personal inboxes too", async () => {
    const { app } = gatedApp();
    const response = await app.request(
      "/ap/actors/instance/inbox",
      post(signedBy("blocked.example")),
    );
    expect(response.status).toBe(403);
  });

  it("rejects when any Signature-Input member is suspended", async () => {
    const { app } = gatedApp();
    const headers = {
      "signature-input":
        'sig1=("@method");keyid="https://fine.example/k";created=1, ' +
        'sig2=("@method");keyid="https://blocked.example/k";created=1',
      signature: "sig1=:eA==:, sig2=:eA==:",
    };
    const response = await app.request("/ap/inbox", post(headers));
    expect(response.status).toBe(403);
  });

  it("passes allowed hosts, unsigned and unparsable requests", async () => {
    const { app, reached } = gatedApp();
    const cases = [signedBy("fine.example"), {}, { signature: "garbage" }];
    for (const headers of cases) {
      const response = await app.request("/ap/inbox", post(headers));
      expect(response.status).toBe(202);
    }
    expect(reached).toHaveLength(3);
  });

  it("passes reject_content hosts", async () => {
    const engine: PolicyEngine = {
      decide: () => ({
        action: "reject_content",
        reason: "off-topic",
        source: { kind: "rule", id: null },
        expiresAt: null,
      }),
    };
    const { app } = gatedApp({ engine });
    const response = await app.request("/ap/inbox", post(signedBy("any.example")));
    expect(response.status).toBe(202);
  });

  it("ignores other paths and methods", async () => {
    const { app, reached } = gatedApp();
    const outbox = await app.request(
      "/ap/actors/instance/outbox",
      post(signedBy("blocked.example")),
    );
    const api = await app.request("/api/v1/repos", post(signedBy("blocked.example")));
    expect(outbox.status).toBe(202);
    expect(api.status).toBe(202);
    expect(reached).toHaveLength(2);
  });

  it("returns 429 with Retry-After over the limit", async () => {
    // One token every 20 seconds after a burst of two.
    const limiter = new InboxRateLimiter({ capacity: 2, refillPerMinute: 3 });
    const { app, reached } = gatedApp({ limiter });
    const headers = { ...signedBy("busy.example"), "x-test-address": "192.0.2.1" };
    expect((await app.request("/ap/inbox", post(headers))).status).toBe(202);
    expect((await app.request("/ap/inbox", post(headers))).status).toBe(202);

    const limited = await app.request("/ap/inbox", post(headers));
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("20");
    const body = (await limited.json()) as { error: { code: string } };
    expect(body.error.code).toBe("rate_limited");
    expect(reached).toHaveLength(2);

    // Another address claiming the same host has its own bucket.
    const other = { ...signedBy("busy.example"), "x-test-address": "192.0.2.2" };
    expect((await app.request("/ap/inbox", post(other))).status).toBe(202);
  });

  it("counts rejections per host and reason", async () => {
    const limiter = new InboxRateLimiter({ capacity: 1, refillPerMinute: 1 });
    const { app, gate } = gatedApp({ limiter });
    for (let i = 0; i < 3; i++) {
      await app.request("/ap/inbox", post(signedBy("blocked.example")));
    }
    for (let i = 0; i < 3; i++) {
      await app.request("/ap/inbox", post(signedBy("busy.example")));
    }
    const stats = gate.stats();
    expect(stats.untrackedRejections).toBe(0);
    expect(stats.rejections).toEqual(
      expect.arrayContaining([
        { host: "blocked.example", reason: "domain_blocked", count: 3, firstAt: NOW, lastAt: NOW },
        { host: "busy.example", reason: "rate_limited", count: 2, firstAt: NOW, lastAt: NOW },
      ]),
    );
    expect(stats.rejections).toHaveLength(2);
  });

  it("bounds the rejection table", async () => {
    const suspendAll: PolicyEngine = {
      decide: () => ({
        action: "suspend",
        reason: "all",
        source: { kind: "rule", id: null },
        expiresAt: null,
      }),
    };
    const { app, gate } = gatedApp({ engine: suspendAll });
    for (let i = 0; i <= MAX_COUNTED_PAIRS; i++) {
      await app.request("/ap/inbox", post(signedBy(`h${i}.example`)));
    }
    const stats = gate.stats();
    expect(stats.rejections).toHaveLength(MAX_COUNTED_PAIRS);
    expect(stats.untrackedRejections).toBe(1);
  });
});

describe("policy gate documents", () => {
  it("rejects signed GETs from a suspended host", async () => {
    const { app, reached, gate } = gatedApp();
    for (const path of ["/ap/actors/instance", "/ap/units/x", "/.well-known/webfinger"]) {
      const response = await app.request(path, { headers: signedBy("blocked.example") });
      expect(response.status).toBe(403);
    }
    expect(reached).toEqual([]);
    expect(gate.stats().rejections[0]?.count).toBe(3);
  });

  it("passes unsigned GETs and other hosts", async () => {
    const { app, reached } = gatedApp();
    expect((await app.request("/ap/actors/instance")).status).toBe(202);
    const fine = await app.request("/ap/actors/instance", { headers: signedBy("fine.example") });
    expect(fine.status).toBe(202);
    // The landing page is not an ActivityPub document.
    const landing = await app.request("/", { headers: signedBy("blocked.example") });
    expect(landing.status).toBe(202);
    expect(reached).toHaveLength(3);
  });
});
