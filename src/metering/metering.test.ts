/**
 * Metering through a whole node: MQTT messages published to the node's embedded broker are
 * counted by the tap, written to the PostgreSQL time-series store and read back through the
 * REST API per topic, UnitNode, Unit, Repo and domain.
 */
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import { createRepo } from "../catalogue/repos.ts";
import { createUnit } from "../catalogue/units.ts";

let node: TestNode;

interface Figure {
  key: string;
  messages: { hour: number };
  mps: { hour: number };
}

async function api<T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
  const response = await fetch(`${node.origin}/api/v1${path}`, {
    ...init,
    headers: { authorization: `Bearer ${node.adminToken}`, ...init.headers },
  });
  return { status: response.status, body: (await response.json()) as T };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 450; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

beforeAll(async () => {
  node = await startTestNode(inject("postgresAdminUrl"), "metering", {
    PU_NODE_TAP_FLUSH_INTERVAL_MS: "200",
  });
}, 60_000);

afterAll(async () => {
  await node?.close();
});

describe("metering in a node", () => {
  it("counts published messages per Unit, Repo and domain", async () => {
    const { db, config } = node.node.services;
    const repo = await createRepo(db, {
      name: "meter-repo",
      repositoryUrl: "https://github.com/example/meter-repo.git",
      platform: "Github",
    });
    if (!repo.ok) throw new Error(JSON.stringify(repo.failure));
    const unit = await createUnit(db, {
      repoId: repo.value.id,
      name: "meter-unit",
      nodes: [
        { type: "Output", topicName: "temperature/pepeunit" },
        { type: "Input", topicName: "fan" },
      ],
    });
    if (!unit.ok) throw new Error(JSON.stringify(unit.failure));
    const [output, input] = [...unit.value.nodes].sort((a, b) => a.type.localeCompare(b.type));
    if (!output || !input) throw new Error("the Unit has no nodes");

    const brokerUrl = node.node.brokerUrl;
    if (!brokerUrl) throw new Error("the node runs no tap");
    // The embedded aedes broker speaks MQTT 3.1.1 only.
    const client = await mqtt.connectAsync(brokerUrl.href);
    const domain = config.pepeunitDomain;
    const topics = [
      ...Array.from({ length: 30 }, () => `${domain}/${input.id}/pepeunit`),
      ...Array.from({ length: 20 }, () => `${domain}/${output.id}`),
      ...Array.from(
        { length: 7 },
        () => "foreign.example.org/0b7c6a5e-1f2d-4c3b-9a8e-7d6c5b4a3f21",
      ),
      // A first level that is not a domain is counted under the domain "" and must not block
      // the batches after it.
      ...Array.from({ length: 3 }, () => `Bad_Domain/${input.id}/pepeunit`),
    ];
    for (const topic of topics) await client.publishAsync(topic, "21.5", { qos: 1 });
    await client.endAsync();

    // Load figures end at the start of the current minute, so the counts appear once the
    // minute of the publishes is over: up to a minute from now.
    const unitFigure = await waitFor("the Unit's load", async () => {
      const { body } = await api<{ items: Figure[] }>(`/load/unit?key=${unit.value.id}`);
      const figure = body.items[0];
      return figure && figure.messages.hour === 50 ? figure : undefined;
    });
    expect(unitFigure.mps.hour).toBeCloseTo(50 / 3600, 6);

    const repoLoad = await api<{ items: Figure[] }>(`/load/repo?key=${repo.value.id}`);
    expect(repoLoad.body.items[0]?.messages.hour).toBe(50);

    const domains = await waitFor("the foreign domain's load", async () => {
      const { body } = await api<{ items: Figure[] }>("/load/domain");
      const foreign = body.items.find((item) => item.key === "foreign.example.org");
      return foreign?.messages.hour === 7 ? body.items : undefined;
    });
    expect(domains.find((item) => item.key === domain)?.messages.hour).toBe(50);
    expect(domains.find((item) => item.key === "")?.messages.hour).toBe(3);

    const channels = await api<{ items: { channel: string; count: number }[] }>("/channels");
    expect(channels.body.items).toContainEqual({ channel: "mqtt", count: 60 });

    const hot = await api<{ items: { key: string; messages: number }[] }>("/load/hot?window=hour");
    expect(hot.body.items[0]).toEqual(
      expect.objectContaining({ key: `${domain}/${input.id}/pepeunit`, messages: 30 }),
    );
  }, 120_000);

  it("serves node state and Prometheus metrics", async () => {
    const metrics = await fetch(`${node.origin}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toContain("pepeunit_node_http_requests_total");
    expect(text).toContain("pepeunit_node_queue_messages");

    const state = await api<{ latest: { values: Record<string, number> } | null }>("/node/state");
    expect(state.status).toBe(200);
  });

  it("rejects metering reads without the admin token", async () => {
    const response = await fetch(`${node.origin}/api/v1/load/unit`);
    expect(response.status).toBe(401);
  });
});
