/**
 * The policy gate and the outbound guards between two in-process nodes over real HTTP. Node A
 * sits behind a counting proxy that is its public origin, so every request B makes to A (key
 * fetches, document fetches, deliveries) is recorded. Node B's public origin is a front server
 * that runs the gate before B's federation, as `src/http/app.ts` will once it is wired.
 */
import type { webcrypto } from "node:crypto";
import http from "node:http";
import { type Context, signRequest } from "@fedify/fedify";
import { Create, Follow } from "@fedify/vocab";
import { type ServerType, serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { federationMiddleware } from "../../federation/hono.ts";
import { inboxGuard } from "../../federation/inbox-guard.ts";
import { getActorKeyPairs } from "../../federation/keys.ts";
import { findFreePort } from "../../test/global-setup.ts";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import { createPolicyGate, type PolicyGate } from "./gate.ts";
import {
  filterQueuedDeliveries,
  guardDocumentLoader,
  guardedLoaders,
  lookupObjectIfAllowed,
  SuspendedHostError,
  sendActivityToAllowed,
} from "./outbound.ts";
import { InboxRateLimiter } from "./rate-limit.ts";
import type { PolicyDecision, PolicyEngine } from "./types.ts";

const NOW = new Date("2027-01-01T00:00:00Z");

/** An engine whose suspended hosts the tests change. */
class FakeEngine implements PolicyEngine {
  readonly suspended = new Set<string>();

  decide(host: string): PolicyDecision {
    if (!this.suspended.has(host)) return { action: "allow" };
    return {
      action: "suspend",
      reason: "test suspension",
      source: { kind: "rule", id: null },
      expiresAt: null,
    };
  }
}

const engine = new FakeEngine();
let nodeA: TestNode;
let nodeB: TestNode;
let proxyA: http.Server;
let frontB: ServerType;
/** Public origins: A's proxy and B's gated front. */
let originA: URL;
let originB: URL;
/** `METHOD /path` of every request that reached A through its public origin. */
const requestsToA: string[] = [];
let gate: PolicyGate;
let signingKey: webcrypto.CryptoKey;

/** Forwards every request to A's listening port unchanged, Host header included. */
function startCountingProxy(port: number, target: () => number): Promise<http.Server> {
  const server = http.createServer((incoming, outgoing) => {
    requestsToA.push(`${incoming.method} ${incoming.url}`);
    const forwarded = http.request(
      {
        host: "127.0.0.1",
        port: target(),
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (response) => {
        outgoing.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(outgoing);
      },
    );
    forwarded.on("error", () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

function useGate(limiter: InboxRateLimiter) {
  gate = createPolicyGate({ engine, limiter, now: () => NOW });
}

/** POSTs a Follow signed with A's instance key (draft-cavage) to B's shared inbox. */
async function deliverFromA(): Promise<Response> {
  const follow = new Follow({
    id: new URL(`/ap/activities/test/${crypto.randomUUID()}`, originA),
    actor: new URL("/ap/actors/instance", originA),
    object: new URL(`/ap/actors/${crypto.randomUUID()}`, originB),
  });
  const request = new Request(new URL("/ap/inbox", originB), {
    method: "POST",
    headers: { "content-type": "application/activity+json" },
    body: JSON.stringify(await follow.toJsonLd()),
  });
  const keyId = new URL("/ap/actors/instance#main-key", originA);
  return await fetch(await signRequest(request, signingKey, keyId));
}

function contextOfB() {
  return nodeB.node.federation.createContext(originB, undefined);
}

const recipientA = () => ({
  id: new URL("/ap/actors/instance", originA),
  inboxId: new URL("/ap/actors/instance/inbox", originA),
});

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  const proxyPort = await findFreePort();
  const frontPort = await findFreePort();
  originA = new URL(`http://127.0.0.1:${proxyPort}`);
  originB = new URL(`http://127.0.0.1:${frontPort}`);

  let listenPortA = 0;
  proxyA = await startCountingProxy(proxyPort, () => listenPortA);
  nodeA = await startTestNode(adminUrl, "policya", { PU_NODE_ORIGIN: originA.origin });
  listenPortA = nodeA.node.port ?? 0;
  nodeB = await startTestNode(adminUrl, "policyb", { PU_NODE_ORIGIN: originB.origin });

  useGate(new InboxRateLimiter({ capacity: 100, refillPerMinute: 100 }));
  const app = new Hono();
  app.use((c, next) => gate.documents(c, next));
  app.use((c, next) => gate.inbox(c, next));
  app.use(inboxGuard());
  app.use(federationMiddleware(nodeB.node.federation, () => undefined, originB));
  frontB = await new Promise<ServerType>((resolve) => {
    const created = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: frontPort }, () =>
      resolve(created),
    );
  });

  const [rsa] = await getActorKeyPairs(nodeA.node.services.db, "instance");
  if (!rsa) throw new Error("node A has no RSA key");
  signingKey = rsa.privateKey;
}, 60_000);

afterAll(async () => {
  const front = frontB;
  if (front) await new Promise((resolve) => front.close(resolve));
  const proxy = proxyA;
  if (proxy) await new Promise((resolve) => proxy.close(resolve));
  await nodeB?.close();
  await nodeA?.close();
});

beforeEach(() => {
  engine.suspended.clear();
  requestsToA.length = 0;
});

describe("policy between two nodes", () => {
  // Runs first, while B has no cached copy of A's key.
  it("rejects a suspended sender before any key fetch", async () => {
    engine.suspended.add(originA.host);
    const rejected = await deliverFromA();
    expect(rejected.status).toBe(403);
    const body = (await rejected.json()) as { error: { code: string } };
    expect(body.error.code).toBe("domain_blocked");
    expect(requestsToA).toEqual([]);

    // The same delivery from an allowed host makes B fetch A's key through the proxy.
    engine.suspended.clear();
    const accepted = await deliverFromA();
    expect(accepted.status).toBe(202);
    expect(requestsToA).toContain("GET /ap/actors/instance");
  });

  it("returns 429 with Retry-After to a busy sender", async () => {
    // One token per minute after a burst of one: the second delivery waits 60 s.
    useGate(new InboxRateLimiter({ capacity: 1, refillPerMinute: 1 }));
    try {
      expect((await deliverFromA()).status).toBe(202);
      const limited = await deliverFromA();
      expect(limited.status).toBe(429);
      expect(limited.headers.get("retry-after")).toBe("60");
      const body = (await limited.json()) as { error: { code: string } };
      expect(body.error.code).toBe("rate_limited");
      expect(gate.stats().rejections).toEqual([
        { host: originA.host, reason: "rate_limited", count: 1, firstAt: NOW, lastAt: NOW },
      ]);
    } finally {
      useGate(new InboxRateLimiter({ capacity: 100, refillPerMinute: 100 }));
    }
  });

  it("does not deliver to a suspended host", async () => {
    const ctx = contextOfB();
    const follow = () =>
      new Follow({
        id: new URL(`/ap/activities/test/${crypto.randomUUID()}`, originB),
        actor: ctx.getActorUri("instance"),
        object: recipientA().id,
      });

    engine.suspended.add(originA.host);
    const dropped = await sendActivityToAllowed(
      ctx,
      engine,
      { identifier: "instance" },
      recipientA(),
      follow(),
      { immediate: true },
    );
    expect(dropped.map((entry) => entry.host)).toEqual([originA.host]);
    expect(requestsToA.filter((line) => line.startsWith("POST"))).toEqual([]);

    // Allowed again, the same call delivers at once (immediate skips the queue).
    engine.suspended.clear();
    const none = await sendActivityToAllowed(
      ctx,
      engine,
      { identifier: "instance" },
      recipientA(),
      follow(),
      { immediate: true },
    );
    expect(none).toEqual([]);
    expect(requestsToA).toContain("POST /ap/actors/instance/inbox");
  });

  it("does not fetch from a suspended host", async () => {
    const ctx = contextOfB();
    // The authenticated loader has no cache, so every allowed lookup reaches A.
    const loader = await ctx.getDocumentLoader({ identifier: "instance" });
    const actorUrl = new URL("/ap/actors/instance", originA);

    engine.suspended.add(originA.host);
    expect(
      await lookupObjectIfAllowed(ctx, engine, actorUrl, { documentLoader: loader }),
    ).toBeNull();
    await expect(guardDocumentLoader(loader, engine)(actorUrl.href)).rejects.toBeInstanceOf(
      SuspendedHostError,
    );
    expect(requestsToA).toEqual([]);

    engine.suspended.clear();
    const actor = await lookupObjectIfAllowed(ctx, engine, actorUrl, { documentLoader: loader });
    expect(actor?.id?.href).toBe(actorUrl.href);
    expect(requestsToA).toContain("GET /ap/actors/instance");
  });
});

describe("guardDocumentLoader", () => {
  it("rejects a redirect to a suspended host", async () => {
    engine.suspended.add("blocked.example");
    const redirected = guardDocumentLoader(
      async () => ({
        contextUrl: null,
        document: {},
        documentUrl: "https://blocked.example/actor",
      }),
      engine,
    );
    await expect(redirected("https://fine.example/actor")).rejects.toThrow(/blocked\.example/);
  });
});

describe("guardedLoaders", () => {
  it("keeps getObject off a suspended host", async () => {
    engine.suspended.add("third.example");
    const fetched: string[] = [];
    const loader = async (url: string) => {
      fetched.push(url);
      return { contextUrl: null, document: {}, documentUrl: url };
    };
    const ctx = { documentLoader: loader, contextLoader: loader } as unknown as Context<void>;
    const create = new Create({
      id: new URL("https://fine.example/activities/1"),
      actor: new URL("https://fine.example/actor"),
      object: new URL("https://third.example/objects/1"),
    });
    await expect(create.getObject(guardedLoaders(ctx, engine))).rejects.toBeInstanceOf(
      SuspendedHostError,
    );
    expect(fetched).toEqual([]);
  });
});

describe("filterQueuedDeliveries", () => {
  function fakeQueue() {
    let handler: ((message: unknown) => Promise<void> | void) | undefined;
    return {
      queue: {
        enqueue: async () => {},
        listen: async (listener: (message: unknown) => Promise<void> | void) => {
          handler = listener;
        },
      },
      deliver: async (message: unknown) => await handler?.(message),
    };
  }

  it("drops outbox messages to suspended inboxes", async () => {
    engine.suspended.add("blocked.example");
    const { queue, deliver } = fakeQueue();
    const received: unknown[] = [];
    await filterQueuedDeliveries(queue, engine).listen((message) => {
      received.push(message);
    });
    const blocked = { type: "outbox", inbox: "https://blocked.example/inbox", activityId: "x" };
    const fine = { type: "outbox", inbox: "https://fine.example/inbox", activityId: "y" };
    const inbound = { type: "inbox", activity: {} };
    await deliver(blocked);
    await deliver(fine);
    await deliver(inbound);
    expect(received).toEqual([fine, inbound]);
  });

  it("removes suspended inboxes from fan-outs", async () => {
    engine.suspended.add("blocked.example");
    const { queue, deliver } = fakeQueue();
    const received: unknown[] = [];
    await filterQueuedDeliveries(queue, engine).listen((message) => {
      received.push(message);
    });
    const target = { actorIds: [], sharedInbox: true };
    await deliver({
      type: "fanout",
      inboxes: { "https://blocked.example/inbox": target, "https://fine.example/inbox": target },
    });
    await deliver({ type: "fanout", inboxes: { "https://blocked.example/inbox": target } });
    expect(received).toEqual([
      { type: "fanout", inboxes: { "https://fine.example/inbox": target } },
    ]);
  });
});
