/**
 * MQTT bridges between node processes, each with its own Mosquitto. The nodes agree on a bridge
 * over ActivityPub and configure their brokers, so A's Output messages reach B. A flood gets A's
 * topic banned and then A itself. The bans end after their expiry, when B restarts with its
 * clock moved by libfaketime. An instance on A's deny list can neither deliver, be fetched nor
 * bridge.
 *
 * Every node and broker listens on its own loopback address (127.0.0.11, .12, .13), so the
 * policy, which works on hosts without ports, can tell the instances apart.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { mosquittoMissingReason } from "../test/mosquitto.ts";
import { dropDatabase } from "../test/postgres.ts";
import { createNodeDatabase, eventually, findFreePort, HarnessNode } from "./harness.ts";
import { type MosquittoService, startMosquittoService } from "./mosquitto-service.ts";

const FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/** Why the scenario cannot run here, or undefined; CI installs both packages. */
const missing =
  mosquittoMissingReason() ??
  (existsSync(FAKETIME_LIBRARY)
    ? undefined
    : `libfaketime not found at ${FAKETIME_LIBRARY}; install the faketime package`);
const HOSTS = { a: "127.0.0.11", b: "127.0.0.12", c: "127.0.0.13" } as const;
/** Agreed limit per topic and B's measuring window: more than 25 messages in 5 s is a flood. */
const MAX_MPS = 5;
const WINDOW_SECONDS = 5;

interface Bridge {
  id: string;
  state: string;
  routes: { unitNodeId: string; topic: string; maxMps: number; qos: number; banned: boolean }[];
}

interface Ban {
  id: string;
  kind: "domain" | "topic";
  domain: string;
  topic: string | null;
  level: number;
  condition: string;
  active: boolean;
  startsAt: string;
  expiresAt: string | null;
  expiredAt: string | null;
  evidence: Record<string, unknown>;
}

let adminUrl: string;
let scratch: string;
let brokerA: MosquittoService;
let brokerB: MosquittoService;
let nodeA: HarnessNode;
let nodeB: HarnessNode;
let nodeC: HarnessNode;
let outputs: string[] = [];
let bridgeId: string;
const clients: MqttClient[] = [];

async function startNodeProcess(
  name: keyof typeof HOSTS,
  env: Record<string, string>,
): Promise<HarnessNode> {
  const { databaseName, databaseUrl } = await createNodeDatabase(adminUrl, `bridges_${name}`);
  const node = new HarnessNode({
    name,
    host: HOSTS[name],
    port: await findFreePort(),
    databaseUrl,
    databaseName,
    dataDir: path.join(scratch, name),
    extraEnv: {
      PU_NODE_BRIDGE_RECONCILE_SECONDS: "1",
      PU_NODE_BRIDGE_RATE_WINDOW_SECONDS: String(WINDOW_SECONDS),
      PU_NODE_BRIDGE_MAX_MPS: String(MAX_MPS),
      PU_NODE_BAN_TOPIC_BANS_FOR_DOMAIN: "2",
      PU_NODE_TAP_FLUSH_INTERVAL_MS: "500",
      ...env,
    },
  });
  await node.start(60_000);
  return node;
}

/** Connects to a broker's local listener, waiting while the node restarts the broker. */
async function connectClient(broker: MosquittoService): Promise<MqttClient> {
  const client = await eventually(`a connection to ${broker.host}`, async () =>
    mqtt.connectAsync(`mqtt://${broker.host}:${broker.localPort}`, { reconnectPeriod: 200 }),
  );
  clients.push(client);
  return client;
}

/** Collects messages on `filter` at B's local broker, as B's Input Unit would receive them. */
async function subscribeOnB(filter: string) {
  const client = await connectClient(brokerB);
  const received: { topic: string; payload: string }[] = [];
  client.on("message", (topic, payload) => received.push({ topic, payload: payload.toString() }));
  await client.subscribeAsync(filter, { qos: 1 });
  return received;
}

/** Publishes on A until B's subscriber gets the message, because bridges connect on their own time. */
async function publishUntilReceived(
  publisher: MqttClient,
  received: { topic: string; payload: string }[],
  topic: string,
  payload: string,
) {
  return await eventually(
    `${payload} on ${topic} to arrive at B`,
    async () => {
      const found = received.find(
        (message) => message.topic === topic && message.payload === payload,
      );
      if (found) return found;
      await publisher.publishAsync(topic, payload, { qos: 1 });
      return undefined;
    },
    30_000,
    300,
  );
}

async function flood(publisher: MqttClient, topic: string, count: number) {
  for (let index = 0; index < count; index++) {
    await publisher.publishAsync(topic, `flood ${index}`, { qos: 0 });
  }
}

/**
 * Floods `topic` in bursts until `probe` finds the ban it expects. Repeating the burst keeps the
 * test independent of when B's monitor last reread the routes (every 5 s).
 */
async function floodUntil<T>(
  publisher: MqttClient,
  topic: string,
  description: string,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  return await eventually(
    description,
    async () => {
      const found = await probe();
      if (found !== undefined) return found;
      await flood(publisher, topic, 100);
      return undefined;
    },
    60_000,
    1000,
  );
}

/**
 * Posts an unsigned Create to `target`'s shared inbox whose signature header claims `sender`'s
 * key, so the policy gate decides on the claimed host before any verification.
 */
async function postClaimingKeyOf(target: HarnessNode, sender: HarnessNode): Promise<number> {
  const response = await fetch(`${target.origin}/ap/inbox`, {
    method: "POST",
    headers: {
      "content-type": "application/activity+json",
      signature: `keyId="${sender.origin}/ap/actors/instance#main-key",algorithm="rsa-sha256",headers="(request-target) host date",signature="AAAA"`,
    },
    body: JSON.stringify({ type: "Create", actor: `${sender.origin}/ap/actors/instance` }),
  });
  return response.status;
}

async function bansOnB(query: string): Promise<Ban[]> {
  const response = await nodeB.api<{ items: Ban[] }>("GET", `/policy/bans?${query}`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.items;
}

beforeAll(async () => {
  if (missing !== undefined) return;
  adminUrl = inject("postgresAdminUrl");
  scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-e2e-bridges-"));
  brokerA = await startMosquittoService(HOSTS.a);
  brokerB = await startMosquittoService(HOSTS.b);
  nodeA = await startNodeProcess("a", {
    ...brokerA.nodeEnv,
    PU_NODE_BRIDGE_BROKER_URL: `mqtt://${HOSTS.a}:${brokerA.peerPort}`,
  });
  nodeB = await startNodeProcess("b", brokerB.nodeEnv);
  nodeC = await startNodeProcess("c", {});

  const repo = await nodeA.api<{ id: string }>("POST", "/repos", {
    name: "weather-station",
    repositoryUrl: "https://github.com/example/weather-station.git",
    platform: "Github",
  });
  expect(repo.status, JSON.stringify(repo.body)).toBe(201);
  const unit = await nodeA.api<{ nodes: { id: string; type: string }[] }>("POST", "/units", {
    repoId: repo.body.id,
    name: "station-1",
    nodes: [
      { type: "Output", topicName: "temperature/pepeunit" },
      { type: "Output", topicName: "humidity/pepeunit" },
      { type: "Output", topicName: "pressure/pepeunit" },
    ],
  });
  expect(unit.status, JSON.stringify(unit.body)).toBe(201);
  outputs = unit.body.nodes.map((node) => node.id).sort();

  for (const follower of [nodeB, nodeC]) {
    const follow = await follower.api("POST", "/instances/follow", { target: nodeA.origin });
    expect(follow.status, JSON.stringify(follow.body)).toBe(202);
    await eventually(`${follower.name} to receive A's Unit`, async () => {
      const rows = await follower.query<{ n: number }>(
        "select count(*)::int as n from federated_units",
      );
      return rows[0]?.n === 1 ? true : undefined;
    });
  }
}, 240_000);

afterEach((context) => {
  if (context.task.result?.state !== "fail") return;
  for (const node of [nodeA, nodeB, nodeC]) {
    if (node) console.error(`--- last log lines of node ${node.name} ---\n${node.tail(80)}`);
  }
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true)));
  for (const node of [nodeA, nodeB, nodeC]) {
    if (!node) continue;
    await node.stop();
    await dropDatabase(adminUrl, node.databaseName);
  }
  await brokerA?.dispose();
  await brokerB?.dispose();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)(`bridges between node processes ${missing ?? ""}`, () => {
  it("carries A's Outputs to B after an agreement", async () => {
    const requested = await nodeB.api<Bridge>("POST", "/bridges", {
      peer: nodeA.origin,
      routes: outputs.map((unitNodeId) => ({ unitNodeId, qos: 1, maxMps: 50 })),
    });
    expect(requested.status, JSON.stringify(requested.body)).toBe(202);
    bridgeId = requested.body.id;

    const active = await eventually("the bridge to be active on B", async () => {
      const response = await nodeB.api<Bridge>("GET", `/bridges/${bridgeId}`);
      return response.body.state === "active" ? response.body : undefined;
    });
    // A agrees to at most its own PU_NODE_BRIDGE_MAX_MPS.
    expect(active.routes.map((route) => route.maxMps)).toEqual([MAX_MPS, MAX_MPS, MAX_MPS]);
    expect(active.routes.map((route) => route.topic).sort()).toEqual(
      outputs.map((id) => `a.pepeunit.test/${id}`).sort(),
    );
    const exported = await nodeA.api<Bridge>("GET", `/bridges/${bridgeId}`);
    expect(exported.body.state).toBe("active");

    const received = await subscribeOnB("a.pepeunit.test/+");
    const publisher = await connectClient(brokerA);
    for (const id of outputs) {
      const message = await publishUntilReceived(
        publisher,
        received,
        `a.pepeunit.test/${id}`,
        `hello ${id}`,
      );
      expect(message.topic).toBe(`a.pepeunit.test/${id}`);
    }
    const reconciliation = await nodeB.api<{ driver: string; lastError: string | null }>(
      "GET",
      "/bridges/reconciliation",
    );
    expect(reconciliation.body).toMatchObject({ driver: "mosquitto", lastError: null });
  }, 120_000);

  it("bans a flooding topic for a day and stops carrying it", async () => {
    const [flooded, other] = outputs.map((id) => `a.pepeunit.test/${id}`) as [string, string];
    const publisher = await connectClient(brokerA);
    const ban = await floodUntil(publisher, flooded, "a topic ban on B", async () => {
      const bans = await bansOnB("kind=topic");
      return bans.find((item) => item.topic === flooded);
    });
    expect(ban).toMatchObject({
      kind: "topic",
      domain: HOSTS.a,
      level: 1,
      condition: "bridged_mps",
      active: true,
    });
    const lasts = Date.parse(ban.expiresAt ?? "") - Date.now();
    expect(lasts).toBeGreaterThan(23 * 3_600_000);
    expect(lasts).toBeLessThanOrEqual(24 * 3_600_000);
    expect(ban.evidence).toMatchObject({ limit: MAX_MPS, windowSeconds: WINDOW_SECONDS });
    expect(Number(ban.evidence.count)).toBeGreaterThan(MAX_MPS);

    const bridgeOnB = await nodeB.api<Bridge>("GET", `/bridges/${bridgeId}`);
    expect(bridgeOnB.body.routes.find((route) => route.topic === flooded)?.banned).toBe(true);
    expect(bridgeOnB.body.routes.find((route) => route.topic === other)?.banned).toBe(false);

    // B's tap meters the bridged traffic under A's domain and topic, as foreign load.
    const metered = await eventually("B's tap to store the flood", async () => {
      const rows = await nodeB.query<{ messages: number; domain_kind: string }>(
        "select sum(messages)::int as messages, min(domain_kind) as domain_kind from topic_counter_minutes where topic = $1 and domain = 'a.pepeunit.test'",
        [flooded],
      );
      return (rows[0]?.messages ?? 0) >= 100 ? rows[0] : undefined;
    });
    expect(metered.domain_kind).toBe("foreign");

    // After the next reconciliation B's broker no longer subscribes to the banned topic.
    const received = await subscribeOnB("a.pepeunit.test/+");
    await eventually(
      "the banned topic to stop while the others flow",
      async () => {
        const marker = `after ban ${Date.now()}`;
        const before = received.length;
        await publisher.publishAsync(flooded, marker, { qos: 1 });
        await publishUntilReceived(publisher, received, other, `${marker} other`);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const later = received.slice(before);
        return later.some((message) => message.payload === marker) ? undefined : true;
      },
      60_000,
      1000,
    );
  }, 120_000);

  it("bans A itself after a second topic ban", async () => {
    const second = `a.pepeunit.test/${outputs[1]}`;
    const third = `a.pepeunit.test/${outputs[2]}`;
    const publisher = await connectClient(brokerA);
    const domainBan = await floodUntil(publisher, second, "a domain ban of A on B", async () => {
      const bans = await bansOnB(`kind=domain&domain=${HOSTS.a}`);
      return bans.find((item) => item.condition === "topic_bans");
    });
    expect(domainBan).toMatchObject({ domain: HOSTS.a, level: 1, active: true });

    // The whole bridge stops, and A's deliveries get 403.
    const received = await subscribeOnB("a.pepeunit.test/+");
    await eventually(
      "the bridge to stop",
      async () => {
        const marker = `after domain ban ${Date.now()}`;
        await publisher.publishAsync(third, marker, { qos: 1 });
        await new Promise((resolve) => setTimeout(resolve, 1500));
        return received.some((message) => message.payload === marker) ? undefined : true;
      },
      60_000,
      500,
    );
    expect(await postClaimingKeyOf(nodeB, nodeA)).toBe(403);
  }, 120_000);

  it("lifts the bans after their expiry", async () => {
    await nodeB.stop();
    // B comes back 25 hours later by its own clock; the worker expires the bans at start.
    await nodeB.start(60_000, {
      LD_PRELOAD: FAKETIME_LIBRARY,
      FAKETIME: "+25h",
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
    });
    const ended = await eventually(
      "B's bans to expire",
      async () => {
        const bans = await bansOnB("limit=100");
        return bans.length === 3 && bans.every((ban) => !ban.active && ban.expiredAt !== null)
          ? bans
          : undefined;
      },
      60_000,
    );
    expect(ended.map((ban) => ban.kind).sort()).toEqual(["domain", "topic", "topic"]);

    const history = await nodeB.api<{ items: { type: string }[] }>(
      "GET",
      `/policy/bans/${ended[0]?.id}/history`,
    );
    expect(history.body.items.map((event) => event.type)).toContain("expired");

    // With the bans gone, the reconciler brings the whole bridge back.
    const received = await subscribeOnB("a.pepeunit.test/+");
    const publisher = await connectClient(brokerA);
    for (const id of outputs) {
      await publishUntilReceived(publisher, received, `a.pepeunit.test/${id}`, `back ${id}`);
    }

    // A second flood of the same topic escalates: its next ban lasts 7 days.
    const flooded = `a.pepeunit.test/${outputs[0]}`;
    const second = await floodUntil(
      publisher,
      flooded,
      "a second ban of the flooded topic",
      async () => {
        const bans = await bansOnB("kind=topic&active=true");
        return bans.find((ban) => ban.topic === flooded);
      },
    );
    expect(second.level).toBe(2);
    expect(Date.parse(second.expiresAt ?? "") - Date.parse(second.startsAt)).toBe(7 * 86_400_000);
  }, 120_000);
});

describe.skipIf(missing !== undefined)(`an instance on the deny list ${missing ?? ""}`, () => {
  it("cannot deliver, be fetched or bridge", async () => {
    const rule = await nodeA.api("POST", "/policy/domain-rules", {
      domain: HOSTS.c,
      kind: "deny",
      severity: "suspend",
      reason: "e2e: denied instance",
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(201);

    // Once A's engine has the rule, C's deliveries get 403 before any parsing.
    await eventually("A's engine to load the rule", async () => {
      return (await postClaimingKeyOf(nodeA, nodeC)) === 403 ? true : undefined;
    });

    // A never fetches from C.
    const follow = await nodeA.api<{ error: { message: string } }>("POST", "/instances/follow", {
      target: nodeC.origin,
    });
    expect(follow.status).toBe(502);
    expect(follow.body.error.message).toContain("suspended");

    // C cannot bridge: A rejects C's signed fetch of its actor with 403, so no Offer is made.
    const offer = await nodeC.api<{ error: { code: string } }>("POST", "/bridges", {
      peer: nodeA.origin,
      routes: [{ unitNodeId: outputs[0], qos: 0 }],
    });
    expect(offer.status, JSON.stringify(offer.body)).toBe(502);
    expect(offer.body.error.code).toBe("federation_lookup_failed");
    const onA = await nodeA.query<{ n: number }>(
      "select count(*)::int as n from bridges where peer_host = $1",
      [HOSTS.c],
    );
    expect(onA[0]?.n).toBe(0);
    const onC = await nodeC.query<{ n: number }>("select count(*)::int as n from bridges");
    expect(onC[0]?.n).toBe(0);

    // C cannot deliver: its signed Undo(Follow) gets 403, so A still lists C as a follower.
    const unfollow = await nodeC.api("DELETE", "/instances/follow", { target: nodeA.origin });
    expect(unfollow.status).toBe(204);
    await eventually("C's delivery of Undo(Follow) to be refused with 403", async () =>
      /Failed to send activity[^\n]*\/ap\/undo\/[^\n]*403/.test(nodeC.tail(400)) ? true : undefined,
    );
    const followers = await nodeA.query<{ n: number }>(
      "select count(*)::int as n from inbound_follows f join remote_actors a on a.id = f.remote_actor_id where a.iri = $1",
      [`${nodeC.origin}/ap/actors/instance`],
    );
    expect(followers[0]?.n).toBe(1);
  }, 120_000);
});
