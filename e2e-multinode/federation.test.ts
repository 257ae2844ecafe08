/**
 * Federation scenarios between real node processes over real HTTP, with signature
 * verification on: publish → follow → search, update and delete propagation, delivery to a
 * node that was down, rejection of unsigned and wrongly signed activities, and Private Repos
 * never leaving their instance.
 */
import { generateCryptoKeyPair, signRequest } from "@fedify/fedify";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { type Cluster, eventually, type HarnessNode, startCluster } from "./harness.ts";

interface SearchHit {
  iri: string;
  name: string;
  summary: string;
  origin: { host: string; isLocal: boolean };
}

interface SearchPage {
  items: SearchHit[];
  next: string | null;
}

let cluster: Cluster;
let nodeA: HarnessNode;
let nodeB: HarnessNode;

function hostOf(node: HarnessNode): string {
  return new URL(node.origin).host;
}

async function createRepo(node: HarnessNode, name: string, extra: Record<string, unknown> = {}) {
  const response = await node.api<{ id: string }>("POST", "/repos", {
    name,
    summary: `Firmware ${name}`,
    repositoryUrl: `https://github.com/example/${name}.git`,
    platform: "Github",
    defaultBranch: "main",
    ...extra,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body;
}

async function searchOn(node: HarnessNode, query: string): Promise<SearchHit[]> {
  const response = await node.api<SearchPage>(
    "GET",
    `/search/repos?q=${encodeURIComponent(query)}&limit=100`,
  );
  expect(response.status).toBe(200);
  return response.body.items;
}

/** Waits until `node` finds a Repo named `name` owned by `owner`, and returns the hit. */
async function waitForRemoteRepo(node: HarnessNode, owner: HarnessNode, name: string) {
  return await eventually(`${node.name} finds ${name} of ${owner.name}`, async () => {
    const hits = await searchOn(node, name);
    return hits.find((hit) => hit.name === name && hit.origin.host === hostOf(owner));
  });
}

beforeAll(async () => {
  cluster = await startCluster(inject("postgresAdminUrl"), ["a", "b", "c"]);
  [nodeA, nodeB] = cluster.nodes as [HarnessNode, HarnessNode];
  const follow = await nodeB.api("POST", "/instances/follow", { target: nodeA.origin });
  expect(follow.status, JSON.stringify(follow.body)).toBeLessThan(300);
  await eventually("A accepts B's follow", async () => {
    const rows = await nodeB.query<{ state: string }>("select state from outbound_follows");
    return rows[0]?.state === "accepted" ? true : undefined;
  });
}, 120_000);

afterEach((context) => {
  if (context.task.result?.state !== "fail") return;
  for (const node of cluster?.nodes ?? []) {
    console.error(`--- last log lines of node ${node.name} ---\n${node.tail(60)}`);
  }
});

afterAll(async () => {
  await cluster?.stop();
});

describe("federation between node processes", () => {
  it("publishes a Repo that a follower finds by search", async () => {
    const repo = await createRepo(nodeA, "weather-station");
    const unit = await nodeA.api("POST", "/units", {
      repoId: repo.id,
      name: "greenhouse-1",
      nodes: [
        { type: "Output", topicName: "temperature/pepeunit" },
        { type: "Input", topicName: "fan_state" },
      ],
    });
    expect(unit.status, JSON.stringify(unit.body)).toBe(201);

    const hit = await waitForRemoteRepo(nodeB, nodeA, "weather-station");
    expect(hit.origin.isLocal).toBe(false);
    expect(hit.iri).toBe(`${nodeA.origin}/ap/actors/${repo.id}`);

    const byUnit = await eventually("B finds the Repo by its Unit name", async () => {
      const response = await nodeB.api<SearchPage>("GET", "/search/repos?unit=greenhouse");
      return response.body.items.find((item) => item.name === "weather-station");
    });
    expect(byUnit.origin.host).toBe(hostOf(nodeA));
  });

  it("backfills Repos published before the follow", async () => {
    const nodeC = cluster.nodes[2] as HarnessNode;
    await createRepo(nodeC, "old-sensor");
    const follow = await nodeB.api("POST", "/instances/follow", { target: nodeC.origin });
    expect(follow.status).toBeLessThan(300);
    await waitForRemoteRepo(nodeB, nodeC, "old-sensor");
  });

  it("propagates an update and a delete", async () => {
    const repo = await createRepo(nodeA, "door-lock");
    await waitForRemoteRepo(nodeB, nodeA, "door-lock");

    const patch = await nodeA.api("PATCH", `/repos/${repo.id}`, { summary: "Smart lock v2" });
    expect(patch.status, JSON.stringify(patch.body)).toBe(200);
    await eventually("B sees the new summary", async () => {
      const hits = await searchOn(nodeB, "door-lock");
      return hits.find((hit) => hit.summary === "Smart lock v2");
    });

    const removed = await nodeA.api("DELETE", `/repos/${repo.id}`);
    expect(removed.status).toBeLessThan(300);
    await eventually("B no longer finds door-lock", async () => {
      const hits = await searchOn(nodeB, "door-lock");
      return hits.some((hit) => hit.name === "door-lock") ? undefined : true;
    });
  });

  it("completes a delivery after the follower restarts", async () => {
    await nodeB.kill();
    await createRepo(nodeA, "soil-probe");
    // Let A try to deliver while B is down.
    await eventually("A has queued the delivery", async () => {
      const rows = await nodeA.query<{ n: number }>(
        "select count(*)::int as n from catalogue_changes",
      );
      return rows[0]?.n === 0 ? true : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await nodeB.start();
    await waitForRemoteRepo(nodeB, nodeA, "soil-probe");
  }, 60_000);

  it("never sends a Private Repo", async () => {
    const privateRepo = await createRepo(nodeA, "secret-lab", { visibility: "Private" });
    const internalRepo = await createRepo(nodeA, "intranet-io", { visibility: "Internal" });
    // A public Repo created after them is the marker that deliveries have caught up.
    await createRepo(nodeA, "marker-repo");
    await waitForRemoteRepo(nodeB, nodeA, "marker-repo");

    const leaked = await nodeB.query(
      "select iri from federated_repos where iri like $1 or iri like $2",
      [`%${privateRepo.id}`, `%${internalRepo.id}`],
    );
    expect(leaked).toEqual([]);
    const actor = await fetch(`${nodeA.origin}/ap/actors/${privateRepo.id}`, {
      headers: { accept: "application/activity+json" },
    });
    expect(actor.status).toBe(404);
  });

  it("rejects unsigned and wrongly signed activities", async () => {
    const before = await nodeB.query<{ n: number }>(
      "select (select count(*) from federated_repos) + (select count(*) from processed_activities) as n",
    );
    const activity = {
      "@context": "https://www.w3.org/ns/activitystreams",
      id: `${nodeA.origin}/ap/activities/forged-${Date.now()}`,
      type: "Create",
      actor: `${nodeA.origin}/ap/actors/instance`,
      object: {
        id: `${nodeA.origin}/ap/actors/00000000-0000-4000-8000-000000000001`,
        type: "Service",
        name: "forged-repo",
        inbox: `${nodeA.origin}/ap/actors/00000000-0000-4000-8000-000000000001/inbox`,
      },
    };
    const inbox = `${nodeB.origin}/ap/inbox`;
    const body = JSON.stringify(activity);
    const headers = { "content-type": "application/activity+json" };

    const unsigned = await fetch(inbox, { method: "POST", headers, body });
    expect(unsigned.status).toBe(401);

    const wrongKey = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
    const signed = await signRequest(
      new Request(inbox, { method: "POST", headers, body }),
      wrongKey.privateKey,
      new URL(`${nodeA.origin}/ap/actors/instance#main-key`),
    );
    const forged = await fetch(signed);
    expect(forged.status).toBe(401);

    const after = await nodeB.query<{ n: number }>(
      "select (select count(*) from federated_repos) + (select count(*) from processed_activities) as n",
    );
    expect(after).toEqual(before);
  });
});
