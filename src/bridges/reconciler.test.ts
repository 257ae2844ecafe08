import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { remoteActors } from "../db/schema/index.ts";
import { DomainPolicyEngine } from "../policy/engine.ts";
import type { DesiredBrokerState } from "./driver.ts";
import {
  buildDesiredState,
  hashDesiredState,
  readReconciliation,
  reconcileBridges,
} from "./reconciler.ts";
import { type BridgeWithRoutes, bridgeHistory, insertBridge } from "./store.ts";

const NOW = new Date("2026-12-04T12:00:00Z");
const NODE_A = "6f1c2b9e-0d4a-4f7e-9a1b-3c5d7e9f1a2b";
const NODE_B = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

function bridge(overrides: Partial<BridgeWithRoutes> = {}): BridgeWithRoutes {
  const id = overrides.id ?? "11111111-2222-4333-8444-555555555555";
  const originDomain = overrides.originDomain ?? "a.pepeunit.test";
  return {
    id,
    role: "importer",
    remoteActorId: "99999999-2222-4333-8444-555555555555",
    peerHost: "node-a.example",
    originDomain,
    state: "active",
    offerIri: `https://node-b.example/ap/bridges/${id}`,
    brokerUrl: "mqtt://mqtt.node-a.example:1883",
    brokerUsername: `pepeunit-node-bridge-${id}`,
    brokerPassword: "secret-password",
    endReason: null,
    createdAt: NOW,
    updatedAt: NOW,
    routes: [NODE_A, NODE_B].map((unitNodeId, index) => ({
      bridgeId: id,
      unitNodeId,
      topic: `${originDomain}/${unitNodeId}`,
      qos: index,
      maxMps: 10,
      inputUnitNodeId: null,
    })),
    ...overrides,
  };
}

const open = new DomainPolicyEngine("open");

describe("buildDesiredState", () => {
  it("turns imported bridges into in bridges", () => {
    const { state, skipped } = buildDesiredState([bridge()], {
      localDomain: "b.pepeunit.test",
      policy: open,
      bannedTopics: new Set(),
      now: NOW,
    });
    expect(skipped).toEqual([]);
    expect(state.grants).toEqual([]);
    expect(state.bridges).toHaveLength(1);
    expect(state.bridges[0]?.direction).toBe("in");
    expect(state.bridges[0]?.remote.url).toBe("mqtt://mqtt.node-a.example:1883");
    expect(state.bridges[0]?.routes).toEqual([
      { topic: `a.pepeunit.test/${NODE_A}`, qos: 0 },
      { topic: `a.pepeunit.test/${NODE_B}`, qos: 1 },
    ]);
  });

  it("turns exported bridges into grants", () => {
    const exported = bridge({ role: "exporter", brokerUrl: null, originDomain: "b.pepeunit.test" });
    const { state } = buildDesiredState([exported], {
      localDomain: "b.pepeunit.test",
      policy: open,
      bannedTopics: new Set(),
      now: NOW,
    });
    expect(state.bridges).toEqual([]);
    expect(state.grants).toEqual([
      {
        id: exported.id,
        username: exported.brokerUsername,
        password: "secret-password",
        topics: [`b.pepeunit.test/${NODE_A}`, `b.pepeunit.test/${NODE_B}`],
      },
    ]);
  });

  it("leaves out banned topics", () => {
    const { state, skipped } = buildDesiredState([bridge()], {
      localDomain: "b.pepeunit.test",
      policy: open,
      bannedTopics: new Set([`a.pepeunit.test/${NODE_A}`]),
      now: NOW,
    });
    expect(state.bridges[0]?.routes.map((route) => route.topic)).toEqual([
      `a.pepeunit.test/${NODE_B}`,
    ]);
    expect(skipped).toEqual([
      { bridgeId: bridge().id, topic: `a.pepeunit.test/${NODE_A}`, reason: "topic banned" },
    ]);
  });

  it("drops a bridge whose every topic is banned", () => {
    const { state } = buildDesiredState([bridge()], {
      localDomain: "b.pepeunit.test",
      policy: open,
      bannedTopics: new Set([`a.pepeunit.test/${NODE_A}`, `a.pepeunit.test/${NODE_B}`]),
      now: NOW,
    });
    expect(state.bridges).toEqual([]);
  });

  it("leaves out bridges of suspended peers", () => {
    const policy = new DomainPolicyEngine("open", [
      {
        id: "r1",
        domain: "node-a.example",
        kind: "deny",
        severity: "suspend",
        includeSubdomains: true,
        reason: "abuse",
        expiresAt: null,
      },
    ]);
    const { state, skipped } = buildDesiredState(
      [bridge(), bridge({ id: "22222222-2222-4333-8444-555555555555", role: "exporter" })],
      { localDomain: "b.pepeunit.test", policy, bannedTopics: new Set(), now: NOW },
    );
    expect(state).toEqual({ bridges: [], grants: [] });
    expect(skipped.map((entry) => entry.reason)).toEqual([
      "peer suspended: abuse",
      "peer suspended: abuse",
    ]);
  });

  it("refuses to import topics of this instance", () => {
    const looping = bridge({ originDomain: "b.pepeunit.test" });
    const { state, skipped } = buildDesiredState([looping], {
      localDomain: "b.pepeunit.test",
      policy: open,
      bannedTopics: new Set(),
      now: NOW,
    });
    expect(state.bridges).toEqual([]);
    expect(skipped[0]?.reason).toContain("with itself");
  });
});

describe("hashDesiredState", () => {
  it("ignores the order of bridges", () => {
    const first = bridge();
    const second = bridge({ id: "22222222-2222-4333-8444-555555555555" });
    const options = {
      localDomain: "b.pepeunit.test",
      policy: open,
      bannedTopics: new Set<string>(),
      now: NOW,
    };
    const forward = buildDesiredState([first, second], options).state;
    const backward = buildDesiredState([second, first], options).state;
    expect(hashDesiredState(forward)).toBe(hashDesiredState(backward));
  });
});

describe("reconcileBridges", () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase(inject("postgresAdminUrl"), "bridges-reconciler");
  });

  afterAll(async () => {
    await database?.drop();
  });

  async function storeImportedBridge(id: string) {
    const [actor] = await database.db
      .insert(remoteActors)
      .values({
        iri: `https://node-a.example/ap/actors/instance-${id}`,
        host: "node-a.example",
        type: "Application",
        inboxUrl: "https://node-a.example/ap/inbox",
      })
      .returning();
    await insertBridge(
      database.db,
      {
        id,
        role: "importer",
        remoteActorId: actor?.id ?? "",
        peerHost: "node-a.example",
        originDomain: "a.pepeunit.test",
        offerIri: `https://node-b.example/ap/bridges/${id}`,
        state: "active",
        routes: [{ unitNodeId: NODE_A, qos: 1, maxMps: 10 }],
        brokerUrl: "mqtt://mqtt.node-a.example:1883",
        brokerUsername: `pepeunit-node-bridge-${id}`,
        brokerPassword: "secret-password",
      },
      "peer",
    );
  }

  /** Returns a driver that keeps the applied state in memory and fails while `failWith` is set. */
  function memoryDriver() {
    const driver = {
      kind: "mosquitto" as const,
      applied: undefined as DesiredBrokerState | undefined,
      failWith: undefined as string | undefined,
      async apply(desired: DesiredBrokerState) {
        if (driver.failWith) throw new Error(driver.failWith);
        const before = new Set(driver.applied?.bridges.map((bridge) => bridge.id) ?? []);
        driver.applied = desired;
        return {
          created: desired.bridges.map((bridge) => bridge.id).filter((id) => !before.has(id)),
          updated: [],
          removed: [],
          restarted: false,
        };
      },
      async inspect() {
        return { bridges: driver.applied?.bridges.map((bridge) => bridge.id) ?? [], grants: [] };
      },
    };
    return driver;
  }

  it("applies, records failures once and recovers", async () => {
    const id = "33333333-2222-4333-8444-555555555555";
    await storeImportedBridge(id);
    const driver = memoryDriver();
    const options = {
      db: database.db,
      driver,
      policy: open,
      localDomain: "b.pepeunit.test",
      bannedTopics: async () => new Set<string>(),
      now: () => NOW,
    };

    driver.failWith = "restart command failed";
    await expect(reconcileBridges(options)).rejects.toThrow("restart command failed");
    await expect(reconcileBridges(options)).rejects.toThrow("restart command failed");
    expect((await readReconciliation(database.db))?.lastError).toContain("restart command failed");

    driver.failWith = undefined;
    const outcome = await reconcileBridges(options);
    expect(outcome.report.created).toEqual([id]);
    expect(driver.applied?.bridges[0]?.routes).toEqual([
      { topic: `a.pepeunit.test/${NODE_A}`, qos: 1 },
    ]);
    const status = await readReconciliation(database.db);
    expect(status?.lastError).toBeNull();
    expect(status?.appliedStateHash).toBe(outcome.stateHash);

    const events = (await bridgeHistory(database.db, id)).map((event) => event.type);
    expect(events).toEqual(["requested", "apply_failed", "applied"]);
  });
});
