/**
 * Bridge agreements between two in-process nodes over real HTTP: the importer's Offer, the
 * exporter's Accept with broker credentials, Rejects of invalid Offers, and both ways of ending
 * a bridge. The broker side is tested with the drivers; here the driver is off.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { findBridge } from "../src/bridges/store.ts";
import { createRepo } from "../src/catalogue/repos.ts";
import { createUnit } from "../src/catalogue/units.ts";
import { BridgeRequestError } from "../src/federation-port.ts";
import { startTestNode, type TestNode } from "../test/nodes.ts";

let exporter: TestNode;
let importer: TestNode;
let outputId: string;
let inputId: string;
let privateOutputId: string;
/** The bridge of the first test, active until the duplicate test ends it. */
let firstBridgeId: string;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function bridgeInState(node: TestNode, id: string, state: string) {
  return await waitFor(`bridge ${id} to be ${state}`, async () => {
    const bridge = await findBridge(node.node.services.db, { id });
    return bridge?.state === state ? bridge : undefined;
  });
}

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  exporter = await startTestNode(adminUrl, "bridge-exporter", {
    PU_NODE_BRIDGE_BROKER_URL: "mqtt://127.0.0.1:18830",
    PU_NODE_BRIDGE_MAX_MPS: "20",
  });
  importer = await startTestNode(adminUrl, "bridge-importer");

  const repo = await createRepo(exporter.node.services.db, {
    name: "weather-station",
    repositoryUrl: "https://github.com/example/weather-station.git",
    platform: "Github",
  });
  if (!repo.ok) throw new Error(JSON.stringify(repo));
  const unit = await createUnit(exporter.node.services.db, {
    repoId: repo.value.id,
    name: "station-1",
    nodes: [
      { type: "Output", topicName: "temperature/pepeunit" },
      { type: "Output", topicName: "secret/pepeunit", visibility: "Private" },
    ],
  });
  if (!unit.ok) throw new Error(JSON.stringify(unit));
  outputId = unit.value.nodes.find((node) => node.topicName === "temperature/pepeunit")?.id ?? "";
  privateOutputId = unit.value.nodes.find((node) => node.visibility === "Private")?.id ?? "";

  const localRepo = await createRepo(importer.node.services.db, {
    name: "fan-controller",
    repositoryUrl: "https://github.com/example/fan-controller.git",
    platform: "Github",
  });
  if (!localRepo.ok) throw new Error(JSON.stringify(localRepo));
  const localUnit = await createUnit(importer.node.services.db, {
    repoId: localRepo.value.id,
    name: "fan-1",
    nodes: [{ type: "Input", topicName: "temperature" }],
  });
  if (!localUnit.ok) throw new Error(JSON.stringify(localUnit));
  inputId = localUnit.value.nodes[0]?.id ?? "";

  await importer.node.services.federation.followInstance(new URL(exporter.origin));
  await waitFor("the exporter's Unit in the importer's catalogue", async () => {
    const rows = await importer.node.services.db.query.federatedUnits.findMany();
    return rows.length > 0 ? rows : undefined;
  });
}, 90_000);

afterAll(async () => {
  await importer?.close();
  await exporter?.close();
});

describe("bridge agreement", () => {
  it("activates both sides with credentials", async () => {
    const requested = await importer.node.services.federation.requestBridge(
      new URL(exporter.origin),
      [{ unitNodeId: outputId, qos: 1, maxMps: 50, inputUnitNodeId: inputId }],
    );
    expect(requested.state).toBe("requested");
    expect(requested.role).toBe("importer");
    firstBridgeId = requested.id;
    expect(requested.originDomain).toBe("bridge-exporter.pepeunit.test");
    expect(requested.routes[0]?.topic).toBe(`bridge-exporter.pepeunit.test/${outputId}`);

    const imported = await bridgeInState(importer, requested.id, "active");
    const exported = await bridgeInState(exporter, requested.id, "active");

    expect(exported.role).toBe("exporter");
    expect(exported.peerHost).toBe("127.0.0.1");
    expect(imported.brokerUrl).toBe("mqtt://127.0.0.1:18830");
    expect(imported.brokerUsername).toBe(exported.brokerUsername);
    expect(imported.brokerPassword).toBe(exported.brokerPassword);
    expect(imported.brokerPassword?.length).toBeGreaterThanOrEqual(40);
    // The exporter caps the requested 50 msg/s at its PU_NODE_BRIDGE_MAX_MPS of 20.
    expect(exported.routes[0]?.maxMps).toBe(20);
    expect(imported.routes[0]?.maxMps).toBe(20);
    expect(imported.routes[0]?.qos).toBe(1);
    expect(imported.routes[0]?.inputUnitNodeId).toBe(inputId);
  });

  it("refuses a second bridge for a bridged UnitNode", async () => {
    const failure = await importer.node.services.federation
      .requestBridge(new URL(exporter.origin), [{ unitNodeId: outputId, qos: 0, maxMps: 5 }])
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BridgeRequestError);
    expect((failure as Error).message).toContain(`Already bridged: ${outputId}`);

    await importer.node.services.federation.endBridge(firstBridgeId, "replaced");
    await bridgeInState(exporter, firstBridgeId, "cancelled");
  });

  it("refuses UnitNodes the peer does not publish as Outputs", async () => {
    const failure = await importer.node.services.federation
      .requestBridge(new URL(exporter.origin), [{ unitNodeId: privateOutputId, qos: 0, maxMps: 5 }])
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BridgeRequestError);
    expect((failure as Error).message).toContain(privateOutputId);
  });

  it("ends a bridge from the importer with Undo", async () => {
    const requested = await importer.node.services.federation.requestBridge(
      new URL(exporter.origin),
      [{ unitNodeId: outputId, qos: 0, maxMps: 5 }],
    );
    await bridgeInState(exporter, requested.id, "active");
    await bridgeInState(importer, requested.id, "active");

    const ended = await importer.node.services.federation.endBridge(
      requested.id,
      "no longer needed",
    );
    expect(ended?.state).toBe("cancelled");
    const exported = await bridgeInState(exporter, requested.id, "cancelled");
    expect(exported.endReason).toBe("no longer needed");
  });

  it("ends a bridge from the exporter with Reject", async () => {
    const requested = await importer.node.services.federation.requestBridge(
      new URL(exporter.origin),
      [{ unitNodeId: outputId, qos: 1, maxMps: 5 }],
    );
    await bridgeInState(exporter, requested.id, "active");
    await bridgeInState(importer, requested.id, "active");

    const ended = await exporter.node.services.federation.endBridge(requested.id, "maintenance");
    expect(ended?.state).toBe("rejected");
    const imported = await bridgeInState(importer, requested.id, "rejected");
    expect(imported.endReason).toBe("maintenance");
  });

  it("is rejected when the exporter publishes no broker", async () => {
    // The importer has no PU_NODE_BRIDGE_BROKER_URL, so an Offer to it is rejected.
    const unit = await createUnit(importer.node.services.db, {
      repoId: (await importer.node.services.db.query.repos.findFirst())?.id ?? "",
      name: "importer-output",
      nodes: [{ type: "Output", topicName: "speed" }],
    });
    if (!unit.ok) throw new Error(JSON.stringify(unit));
    const nodeId = unit.value.nodes[0]?.id ?? "";
    await exporter.node.services.federation.followInstance(new URL(importer.origin));
    await waitFor("the importer's Unit in the exporter's catalogue", async () => {
      const rows = await exporter.node.services.db.query.federatedUnits.findMany();
      return rows.some((row) => row.nodes.some((node) => node.id === nodeId)) ? true : undefined;
    });
    const offer = await exporter.node.services.federation.requestBridge(new URL(importer.origin), [
      { unitNodeId: nodeId, qos: 0, maxMps: 1 },
    ]);
    const rejected = await bridgeInState(exporter, offer.id, "rejected");
    expect(rejected.endReason).toBe("this instance does not export MQTT bridges");
  });
});
