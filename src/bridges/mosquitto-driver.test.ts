import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findFreePort } from "../../test/global-setup.ts";
import {
  mosquittoMissingReason,
  startMosquitto,
  type TestMosquitto,
} from "../../test/mosquitto.ts";
import {
  type BridgeSpec,
  type DesiredBrokerState,
  type ExportGrant,
  InvalidBridgeError,
} from "./driver.ts";
import { BrokerControlError, MosquittoBridgeDriver } from "./mosquitto-driver.ts";

const DOMAIN_A = "a.example";
const DOMAIN_B = "b.example";
const EMPTY: DesiredBrokerState = { bridges: [], grants: [] };

const missingMosquitto = mosquittoMissingReason();

/** The files a driver owns, in a fresh temporary directory. */
interface NodeFiles {
  directory: string;
  includeDirectory: string;
  bridgeFile: string;
  passwordFile: string;
  aclFile: string;
}

async function createNodeFiles(name: string): Promise<NodeFiles> {
  const directory = await mkdtemp(path.join(tmpdir(), `pepeunit-node-bridges-${name}-`));
  const includeDirectory = path.join(directory, "bridges.d");
  await mkdir(includeDirectory);
  return {
    directory,
    includeDirectory,
    bridgeFile: path.join(includeDirectory, "pepeunit-node.conf"),
    passwordFile: path.join(directory, "peers.passwd"),
    aclFile: path.join(directory, "peers.acl"),
  };
}

async function readAll(files: NodeFiles): Promise<string[]> {
  return await Promise.all(
    [files.bridgeFile, files.passwordFile, files.aclFile].map((file) =>
      readFile(file, "utf8").catch(() => "<missing>"),
    ),
  );
}

/** One node: its driver, its broker with a peer listener, and counts of restarts and reloads. */
interface TestNode {
  driver: MosquittoBridgeDriver;
  broker: TestMosquitto;
  files: NodeFiles;
  peerPort: number;
  restarts: number;
  reloads: number;
}

async function startNode(name: string, localDomain: string): Promise<TestNode> {
  const files = await createNodeFiles(name);
  const peerPort = await findFreePort();
  let broker: TestMosquitto | undefined;
  const node = {
    files,
    peerPort,
    restarts: 0,
    reloads: 0,
  } as TestNode;
  node.driver = new MosquittoBridgeDriver({
    ...files,
    localDomain,
    restart: async () => {
      node.restarts += 1;
      await broker?.restart();
    },
    reload: async () => {
      node.reloads += 1;
      await broker?.reload();
    },
  });
  // Mosquitto does not start without its password file, so the node writes the empty files first.
  await node.driver.apply(EMPTY);
  broker = await startMosquitto({
    perListenerSettings: true,
    extraConfig: [
      `listener ${peerPort} 127.0.0.1`,
      "allow_anonymous false",
      `password_file ${files.passwordFile}`,
      `acl_file ${files.aclFile}`,
      `include_dir ${files.includeDirectory}`,
    ],
    extraPorts: [peerPort],
  });
  node.broker = broker;
  return node;
}

async function disposeNode(node: TestNode | undefined): Promise<void> {
  if (!node) return;
  await node.broker.dispose();
  await rm(node.files.directory, { recursive: true, force: true });
}

/** A received message with the QoS of its delivery. */
interface Received {
  topic: string;
  payload: string;
  qos: number;
}

/** Connects with MQTT 3.1.1 and records every message it receives. */
async function connectRecording(
  port: number,
  options: IClientOptions = {},
): Promise<{ client: MqttClient; received: Received[] }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    ...options,
  });
  const received: Received[] = [];
  client.on("message", (topic, payload, packet) => {
    received.push({ topic, payload: payload.toString(), qos: packet.qos });
  });
  return { client, received };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * Publishes on `publisher` every 200 ms until `received` contains a message with `payload`. A bridge
 * subscribes on the remote broker shortly after it connects, so the first messages may go nowhere.
 */
async function publishUntilReceived(
  publisher: MqttClient,
  topic: string,
  payload: string,
  received: Received[],
): Promise<Received> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    await publisher.publishAsync(topic, payload, { qos: 1 });
    const match = received.find((message) => message.payload === payload);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${payload} on ${topic}`);
    await sleep(200);
  }
}

/** Waits until the local state notification of bridge client `clientId` reports a connection. */
async function waitForBridgeUp(broker: TestMosquitto, clientId: string): Promise<void> {
  const { client, received } = await connectRecording(broker.port);
  try {
    await client.subscribeAsync(`$SYS/broker/connection/${clientId}/state`, { qos: 1 });
    await waitFor(
      () => received.some((message) => message.payload === "1"),
      `bridge ${clientId} to connect`,
    );
  } finally {
    await client.endAsync();
  }
}

/**
 * Connects to the peer listener of `node` with a grant's credentials. Mosquitto rereads the files
 * right after it logs the reload, so the first attempts may still be rejected.
 */
async function connectAfterReload(
  node: TestNode,
  username: string,
  password: string,
): Promise<MqttClient> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const client = await mqtt
      .connectAsync(`mqtt://127.0.0.1:${node.peerPort}`, {
        protocolVersion: 4,
        reconnectPeriod: 0,
        username,
        password,
      })
      .catch(() => undefined);
    if (client) return client;
    if (Date.now() > deadline) {
      throw new Error(
        `The peer listener did not accept ${username} after the reload:\n${await node.broker.log()}`,
      );
    }
    await sleep(50);
  }
}

function topicOf(domain: string): string {
  return `${domain}/${randomUUID()}`;
}

describe.skipIf(missingMosquitto !== undefined)(
  `Mosquitto bridge driver ${missingMosquitto ?? ""}`,
  () => {
    let nodeA: TestNode;
    let nodeB: TestNode;
    const clients: MqttClient[] = [];

    const t1 = topicOf(DOMAIN_A);
    const t2 = topicOf(DOMAIN_A);
    const t3 = topicOf(DOMAIN_A);
    const notGranted = topicOf(DOMAIN_A);
    const outTopic = topicOf(DOMAIN_B);

    const grant1: ExportGrant = {
      id: randomUUID(),
      username: "peer-b-1",
      password: "grant-1-secret",
      topics: [t1, t2],
    };
    const grant2: ExportGrant = {
      id: randomUUID(),
      username: "peer-b-2",
      password: "grant-2-secret",
      topics: [t3],
    };

    let bridge1: BridgeSpec;
    let bridge2: BridgeSpec;
    let bridgeOut: BridgeSpec;

    beforeAll(async () => {
      nodeA = await startNode("a", DOMAIN_A);
      nodeB = await startNode("b", DOMAIN_B);
      const peerUrl = `mqtt://127.0.0.1:${nodeA.peerPort}`;
      bridge1 = {
        id: grant1.id,
        direction: "in",
        remote: {
          url: peerUrl,
          username: grant1.username,
          password: grant1.password,
          clientId: "b-bridge-1",
        },
        routes: [
          { topic: t1, qos: 1 },
          { topic: t2, qos: 0 },
        ],
      };
      bridge2 = {
        id: grant2.id,
        direction: "in",
        remote: {
          url: peerUrl,
          username: grant2.username,
          password: grant2.password,
          clientId: "b-bridge-2",
        },
        routes: [{ topic: t3, qos: 1 }],
      };
      bridgeOut = {
        id: randomUUID(),
        direction: "out",
        remote: { url: `mqtt://127.0.0.1:${nodeA.broker.port}`, clientId: "b-bridge-out" },
        routes: [{ topic: outTopic, qos: 1 }],
      };
    });

    afterAll(async () => {
      await Promise.all(clients.map((client) => client.endAsync(true)));
      await disposeNode(nodeA);
      await disposeNode(nodeB);
    });

    async function connect(port: number, options: IClientOptions = {}) {
      const connection = await connectRecording(port, options);
      clients.push(connection.client);
      return connection;
    }

    it("grant reloads and accepts its password", async () => {
      const report = await nodeA.driver.apply({ bridges: [], grants: [grant1, grant2] });

      expect(report.created.sort()).toEqual([grant1.id, grant2.id].sort());
      expect(report.updated).toEqual([]);
      expect(report.removed).toEqual([]);
      expect(report.restarted).toBe(false);
      expect(nodeA.reloads).toBe(1);
      expect(nodeA.restarts).toBe(0);
      expect(await nodeA.driver.inspect()).toEqual({
        bridges: [],
        grants: [grant1.id, grant2.id].sort(),
      });

      const client = await connectAfterReload(nodeA, grant1.username, grant1.password);
      await client.endAsync();
    });

    it("peer listener rejects wrong credentials", async () => {
      const attempts: IClientOptions[] = [
        { username: grant1.username, password: "wrong-password" },
        { username: grant1.username, password: grant2.password },
        { username: "unknown-peer", password: grant1.password },
        {},
      ];
      for (const attempt of attempts) {
        const error = await mqtt
          .connectAsync(`mqtt://127.0.0.1:${nodeA.peerPort}`, {
            protocolVersion: 4,
            reconnectPeriod: 0,
            ...attempt,
          })
          .then(
            async (client) => {
              await client.endAsync();
              return undefined;
            },
            (reason: unknown) => reason,
          );
        expect(error, `connect as ${JSON.stringify(attempt.username)}`).toBeInstanceOf(Error);
        expect((error as { code?: number }).code, JSON.stringify(attempt.username)).toBe(5);
      }
    });

    it("peer listener delivers only granted topics", async () => {
      const peer = await connect(nodeA.peerPort, {
        username: grant1.username,
        password: grant1.password,
      });
      const publisher = await connect(nodeA.broker.port);
      const localReader = await connect(nodeA.broker.port);
      await localReader.client.subscribeAsync(t1, { qos: 1 });
      // Mosquitto 2.0.11 grants these subscriptions and checks read access at delivery.
      await peer.client.subscribeAsync([t1, notGranted, t3], { qos: 1 });

      // One publisher and one subscriber connection keep the order, so once the last message
      // arrives, any earlier message that the ACL let through would have arrived before it.
      await publisher.client.publishAsync(notGranted, "not granted", { qos: 1 });
      await publisher.client.publishAsync(t3, "granted to grant 2", { qos: 1 });
      await publisher.client.publishAsync(t1, "granted", { qos: 1 });
      await waitFor(() => peer.received.length > 0, "the granted message on the peer listener");
      expect(peer.received.map((message) => message.payload)).toEqual(["granted"]);

      // The grant is read-only: Mosquitto acknowledges the peer's publish and drops it.
      await peer.client.publishAsync(t1, "written by peer", { qos: 1 });
      await publisher.client.publishAsync(t1, "after the peer", { qos: 1 });
      await waitFor(
        () => localReader.received.some((message) => message.payload === "after the peer"),
        "the local message after the peer's publish",
      );
      expect(localReader.received.map((message) => message.payload)).not.toContain(
        "written by peer",
      );
    });

    it("in bridge carries topics with their QoS", async () => {
      const report = await nodeB.driver.apply({ bridges: [bridge1], grants: [] });

      expect(report).toEqual({
        created: [bridge1.id],
        updated: [],
        removed: [],
        restarted: true,
      });
      expect(nodeB.restarts).toBe(1);
      expect(await nodeB.driver.inspect()).toEqual({ bridges: [bridge1.id], grants: [] });
      expect(await nodeB.driver.pendingAction()).toBeUndefined();

      await waitForBridgeUp(nodeB.broker, "b-bridge-1");
      const reader = await connect(nodeB.broker.port);
      await reader.client.subscribeAsync([t1, t2], { qos: 1 });
      const publisher = await connect(nodeA.broker.port);

      const onT1 = await publishUntilReceived(publisher.client, t1, "t1 message", reader.received);
      const onT2 = await publishUntilReceived(publisher.client, t2, "t2 message", reader.received);
      expect(onT1.topic).toBe(t1);
      expect(onT1.qos).toBe(1);
      expect(onT2.topic).toBe(t2);
      // The route subscribes with QoS 0, which caps the delivery of a QoS 1 publication.
      expect(onT2.qos).toBe(0);
    });

    it("same state twice changes nothing", async () => {
      const stateA: DesiredBrokerState = { bridges: [], grants: [grant1, grant2] };
      const stateB: DesiredBrokerState = { bridges: [bridge1], grants: [] };
      const filesA = await readAll(nodeA.files);
      const filesB = await readAll(nodeB.files);
      const modifiedB = (await stat(nodeB.files.bridgeFile)).mtimeMs;
      const modifiedA = (await stat(nodeA.files.passwordFile)).mtimeMs;
      const counts = [nodeA.restarts, nodeA.reloads, nodeB.restarts, nodeB.reloads];

      const reportA = await nodeA.driver.apply(stateA);
      const reportB = await nodeB.driver.apply(stateB);

      const unchanged = { created: [], updated: [], removed: [], restarted: false };
      expect(reportA).toEqual(unchanged);
      expect(reportB).toEqual(unchanged);
      expect([nodeA.restarts, nodeA.reloads, nodeB.restarts, nodeB.reloads]).toEqual(counts);
      expect(await readAll(nodeA.files)).toEqual(filesA);
      expect(await readAll(nodeB.files)).toEqual(filesB);
      expect((await stat(nodeB.files.bridgeFile)).mtimeMs).toBe(modifiedB);
      expect((await stat(nodeA.files.passwordFile)).mtimeMs).toBe(modifiedA);
    });

    it("removing a bridge stops its flow", async () => {
      await nodeB.driver.apply({ bridges: [bridge1, bridge2], grants: [] });
      await waitForBridgeUp(nodeB.broker, "b-bridge-2");

      const report = await nodeB.driver.apply({ bridges: [bridge2], grants: [] });
      expect(report).toEqual({ created: [], updated: [], removed: [bridge1.id], restarted: true });
      expect(await nodeB.driver.inspect()).toEqual({ bridges: [bridge2.id], grants: [] });
      expect(await readFile(nodeB.files.bridgeFile, "utf8")).not.toContain("b-bridge-1");

      await waitForBridgeUp(nodeB.broker, "b-bridge-2");
      const reader = await connect(nodeB.broker.port);
      await reader.client.subscribeAsync([t1, t3], { qos: 1 });
      const publisher = await connect(nodeA.broker.port);
      // Broker A routes t1 before t3, so when t3 arrives through the remaining bridge, a t1
      // message for a still running bridge 1 would already be on its way. The pause gives it time
      // to arrive.
      await publisher.client.publishAsync(t1, "t1 after removal", { qos: 1 });
      await publishUntilReceived(publisher.client, t3, "t3 after removal", reader.received);
      await sleep(500);
      expect(reader.received.map((message) => message.topic)).not.toContain(t1);
    });

    it("out bridge publishes local topics", async () => {
      const report = await nodeB.driver.apply({ bridges: [bridge2, bridgeOut], grants: [] });
      expect(report).toEqual({
        created: [bridgeOut.id],
        updated: [],
        removed: [],
        restarted: true,
      });

      await waitForBridgeUp(nodeB.broker, "b-bridge-out");
      const reader = await connect(nodeA.broker.port);
      await reader.client.subscribeAsync(outTopic, { qos: 1 });
      const publisher = await connect(nodeB.broker.port);
      const message = await publishUntilReceived(
        publisher.client,
        outTopic,
        "from b",
        reader.received,
      );
      expect(message.topic).toBe(outTopic);
      expect(message.qos).toBe(1);
    });

    it("changed route updates and restarts", async () => {
      const changed: BridgeSpec = { ...bridge2, routes: [{ topic: t3, qos: 0 }] };
      const report = await nodeB.driver.apply({ bridges: [changed, bridgeOut], grants: [] });
      expect(report).toEqual({ created: [], updated: [bridge2.id], removed: [], restarted: true });
      expect(await readFile(nodeB.files.bridgeFile, "utf8")).toContain(`topic ${t3} in 0`);
    });

    it("changed grant password reloads", async () => {
      const reloads = nodeA.reloads;
      const changed: ExportGrant = { ...grant2, password: "grant-2-new-secret" };
      const report = await nodeA.driver.apply({ bridges: [], grants: [grant1, changed] });
      expect(report).toEqual({ created: [], updated: [grant2.id], removed: [], restarted: false });
      expect(nodeA.reloads).toBe(reloads + 1);

      const client = await connectAfterReload(nodeA, changed.username, changed.password);
      await client.endAsync();
    });

    it("removing a route stops that topic", async () => {
      await nodeB.driver.apply({ bridges: [bridge1], grants: [] });
      await waitForBridgeUp(nodeB.broker, "b-bridge-1");
      const narrowed: BridgeSpec = { ...bridge1, routes: [{ topic: t2, qos: 0 }] };
      const report = await nodeB.driver.apply({ bridges: [narrowed], grants: [] });
      expect(report).toEqual({ created: [], updated: [bridge1.id], removed: [], restarted: true });

      await waitForBridgeUp(nodeB.broker, "b-bridge-1");
      const reader = await connect(nodeB.broker.port);
      await reader.client.subscribeAsync([t1, t2], { qos: 1 });
      const publisher = await connect(nodeA.broker.port);
      // The clean session drops the remote subscription of t1; a kept one would still carry it.
      await publisher.client.publishAsync(t1, "t1 after narrowing", { qos: 1 });
      await publishUntilReceived(publisher.client, t2, "t2 after narrowing", reader.received);
      await sleep(500);
      expect(reader.received.map((message) => message.topic)).not.toContain(t1);
    });

    it("wrong domain rejected before writing", async () => {
      const foreignIn: BridgeSpec = {
        ...bridge2,
        id: randomUUID(),
        remote: { ...bridge2.remote, clientId: "b-bridge-local" },
        routes: [{ topic: topicOf(DOMAIN_B), qos: 1 }],
      };
      const mixedIn: BridgeSpec = {
        ...foreignIn,
        routes: [
          { topic: topicOf(DOMAIN_A), qos: 1 },
          { topic: topicOf("c.example"), qos: 1 },
        ],
      };
      const foreignOut: BridgeSpec = {
        ...bridgeOut,
        id: randomUUID(),
        remote: { ...bridgeOut.remote, clientId: "b-bridge-out-2" },
        routes: [{ topic: topicOf(DOMAIN_A), qos: 1 }],
      };
      const foreignGrant: ExportGrant = {
        id: randomUUID(),
        username: "peer-a",
        password: "secret",
        topics: [topicOf(DOMAIN_A)],
      };
      const cases: Array<[string, DesiredBrokerState, string]> = [
        ["in bridge of local topic", { bridges: [foreignIn], grants: [] }, DOMAIN_B],
        ["in bridge of two domains", { bridges: [mixedIn], grants: [] }, "c.example"],
        ["out bridge of foreign topic", { bridges: [foreignOut], grants: [] }, DOMAIN_A],
        ["grant of foreign topic", { bridges: [], grants: [foreignGrant] }, DOMAIN_A],
      ];
      const before = await readAll(nodeB.files);
      const counts = [nodeB.restarts, nodeB.reloads];

      for (const [name, state, domain] of cases) {
        const error = await nodeB.driver.apply(state).catch((reason: unknown) => reason);
        expect(error, name).toBeInstanceOf(InvalidBridgeError);
        expect((error as Error).message, name).toContain(domain);
      }
      expect(await readAll(nodeB.files)).toEqual(before);
      expect([nodeB.restarts, nodeB.reloads]).toEqual(counts);
    });

    it("injection attempts rejected", async () => {
      const base: BridgeSpec = {
        id: randomUUID(),
        direction: "out",
        remote: { url: "mqtt://127.0.0.1:1883", clientId: "b-injection", username: "user" },
        routes: [{ topic: outTopic, qos: 1 }],
      };
      const withRemote = (remote: Partial<BridgeSpec["remote"]>): BridgeSpec => ({
        ...base,
        remote: { ...base.remote, ...remote },
      });
      const grant = (fields: Partial<ExportGrant>): ExportGrant => ({
        id: randomUUID(),
        username: "peer",
        password: "secret",
        topics: [outTopic],
        ...fields,
      });
      const cases: Array<[string, DesiredBrokerState, string]> = [
        [
          "password with line break",
          { bridges: [withRemote({ password: "pw\ntopic # both 2" })], grants: [] },
          "remote password",
        ],
        [
          "username with space",
          { bridges: [withRemote({ username: "user topic" })], grants: [] },
          "remote username",
        ],
        [
          "client id with carriage return",
          { bridges: [withRemote({ clientId: "id\rconnection x" })], grants: [] },
          "remote client id",
        ],
        [
          "URL with line break",
          { bridges: [withRemote({ url: "mqtt://127.0.0.1:1883\nconnection x" })], grants: [] },
          "remote broker URL",
        ],
        [
          "URL with credentials",
          { bridges: [withRemote({ url: "mqtt://u:p@127.0.0.1:1883" })], grants: [] },
          "remote broker URL",
        ],
        [
          "URL with path",
          { bridges: [withRemote({ url: "mqtt://127.0.0.1:1883/x" })], grants: [] },
          "remote broker URL",
        ],
        [
          "URL of another scheme",
          { bridges: [withRemote({ url: "ws://127.0.0.1:1883" })], grants: [] },
          "remote broker URL",
        ],
        [
          "mqtts without CA file",
          { bridges: [withRemote({ url: "mqtts://broker.example:8883" })], grants: [] },
          "caFile",
        ],
        [
          "password without username",
          {
            bridges: [{ ...base, remote: { url: base.remote.url, clientId: "x", password: "p" } }],
            grants: [],
          },
          "no username",
        ],
        [
          "route topic with space",
          { bridges: [{ ...base, routes: [{ topic: `${outTopic} in`, qos: 1 }] }], grants: [] },
          "Invalid bridge topic",
        ],
        [
          "grant username with line break",
          { bridges: [], grants: [grant({ username: "peer\nuser admin" })] },
          "username of grant",
        ],
        [
          "grant username with colon",
          { bridges: [], grants: [grant({ username: "peer:x" })] },
          "password file",
        ],
        [
          "grant with wildcard topic",
          { bridges: [], grants: [grant({ topics: [`${DOMAIN_B}/#`] })] },
          "Invalid bridge topic",
        ],
        ["grant id not a UUID", { bridges: [], grants: [grant({ id: "x\ny" })] }, "grant id"],
      ];
      const before = await readAll(nodeB.files);

      for (const [name, state, fragment] of cases) {
        const error = await nodeB.driver.apply(state).catch((reason: unknown) => reason);
        expect(error, name).toBeInstanceOf(InvalidBridgeError);
        expect((error as Error).message, name).toContain(fragment);
      }
      expect(await readAll(nodeB.files)).toEqual(before);
    });
  },
);

describe("Mosquitto driver without a broker", () => {
  const bridge: BridgeSpec = {
    id: randomUUID(),
    direction: "in",
    remote: { url: "mqtts://broker.a.example", clientId: "b-bridge", username: "u", password: "p" },
    routes: [{ topic: topicOf(DOMAIN_A), qos: 1 }],
  };

  async function createDriver(
    restart: () => Promise<void>,
    overrides: { caFile?: string; restartCommand?: string; timeoutMs?: number } = {},
  ) {
    const files = await createNodeFiles("offline");
    const driver = new MosquittoBridgeDriver({
      ...files,
      localDomain: DOMAIN_B,
      caFile: overrides.caFile ?? "/etc/ssl/certs/ca-certificates.crt",
      restart:
        overrides.restartCommand === undefined
          ? restart
          : {
              command: overrides.restartCommand,
              ...(overrides.timeoutMs === undefined ? {} : { timeoutMs: overrides.timeoutMs }),
            },
      reload: async () => {},
    });
    return { driver, files };
  }

  it("failed restart is retried next apply", async () => {
    let attempts = 0;
    const { driver, files } = await createDriver(async () => {
      attempts += 1;
      if (attempts === 1) throw new Error("broker did not come back");
    });
    try {
      const failure = await driver.apply({ bridges: [bridge], grants: [] }).catch((e) => e);
      expect(failure).toBeInstanceOf(BrokerControlError);
      expect((failure as Error).message).toContain("broker did not come back");
      expect((failure as Error).message).toContain("next apply retries the restart");
      expect(await driver.inspect()).toEqual({ bridges: [bridge.id], grants: [] });
      expect(await driver.pendingAction()).toBe("restart");

      const retried = await driver.apply({ bridges: [bridge], grants: [] });
      expect(retried).toEqual({ created: [], updated: [], removed: [], restarted: true });
      expect(attempts).toBe(2);
      expect(await driver.pendingAction()).toBeUndefined();

      const settled = await driver.apply({ bridges: [bridge], grants: [] });
      expect(settled.restarted).toBe(false);
      expect(attempts).toBe(2);
    } finally {
      await rm(files.directory, { recursive: true, force: true });
    }
  });

  it("mqtts bridge names the CA file", async () => {
    const { driver, files } = await createDriver(async () => {}, { caFile: "/etc/peers/ca.pem" });
    try {
      await driver.apply({ bridges: [bridge], grants: [] });
      const text = await readFile(files.bridgeFile, "utf8");
      expect(text).toContain("address broker.a.example:8883\n");
      expect(text).toContain("bridge_cafile /etc/peers/ca.pem\n");
    } finally {
      await rm(files.directory, { recursive: true, force: true });
    }
  });

  it("restart command reports exit status", async () => {
    const { driver, files } = await createDriver(async () => {}, {
      restartCommand: "echo 'Error: invalid bridge section' >&2; exit 3",
    });
    try {
      const failure = await driver.apply({ bridges: [bridge], grants: [] }).catch((e) => e);
      expect(failure).toBeInstanceOf(BrokerControlError);
      expect((failure as Error).message).toContain("exit status 3");
      expect((failure as Error).message).toContain("Error: invalid bridge section");
    } finally {
      await rm(files.directory, { recursive: true, force: true });
    }
  });

  it("restart command times out", async () => {
    const { driver, files } = await createDriver(async () => {}, {
      restartCommand: "sleep 30",
      timeoutMs: 200,
    });
    try {
      const failure = await driver.apply({ bridges: [bridge], grants: [] }).catch((e) => e);
      expect(failure).toBeInstanceOf(BrokerControlError);
      expect((failure as Error).message).toContain("timed out after 200 ms");
    } finally {
      await rm(files.directory, { recursive: true, force: true });
    }
  });

  it("bridge file name must end in .conf", () => {
    expect(
      () =>
        new MosquittoBridgeDriver({
          bridgeFile: "/tmp/bridges.txt",
          passwordFile: "/tmp/p",
          aclFile: "/tmp/a",
          localDomain: DOMAIN_B,
          restart: async () => {},
          reload: async () => {},
        }),
    ).toThrow(".conf");
  });
});
