/**
 * Following a single Repo actor, as any ActivityPub server may: the follower receives the
 * Repo's Units from the Repo actor itself and backfills them from the Repo's outbox.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRepo } from "../src/catalogue/repos.ts";
import { createUnit } from "../src/catalogue/units.ts";
import { federatedRepos } from "../src/db/schema/index.ts";
import { startTestNode, type TestNode } from "../test/nodes.ts";
import { backfillDueFollows } from "./backfill.ts";

let publisher: TestNode;
let follower: TestNode;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  publisher = await startTestNode(adminUrl, "publisher");
  follower = await startTestNode(adminUrl, "follower");
}, 60_000);

afterAll(async () => {
  await follower?.close();
  await publisher?.close();
});

describe("Repo actor follow", () => {
  it("delivers and backfills the Repo's Units", async () => {
    const db = publisher.node.services.db;
    const repo = await createRepo(db, {
      name: "air-quality",
      repositoryUrl: "https://github.com/example/air-quality.git",
      platform: "Github",
    });
    if (!repo.ok) throw new Error(JSON.stringify(repo.failure));
    const before = await createUnit(db, { repoId: repo.value.id, name: "kitchen-air" });
    expect(before.ok).toBe(true);

    const repoIri = `${publisher.origin}/ap/actors/${repo.value.id}`;
    const followed = await follower.node.services.federation.followInstance(new URL(repoIri));
    expect(followed.actorIri).toBe(repoIri);

    const followerDb = follower.node.services.db;
    const backfilled = await waitFor("the backfilled Unit", async () =>
      (await followerDb.query.federatedUnits.findMany()).find(
        (unit) => unit.name === "kitchen-air",
      ),
    );
    expect(backfilled.repoIri).toBe(repoIri);

    const after = await createUnit(db, {
      repoId: repo.value.id,
      name: "bedroom-air",
      nodes: [{ type: "Output", topicName: "co2/pepeunit" }],
    });
    expect(after.ok).toBe(true);
    const delivered = await waitFor("the delivered Unit", async () =>
      (await followerDb.query.federatedUnits.findMany()).find(
        (unit) => unit.name === "bedroom-air",
      ),
    );
    expect(delivered.nodes).toHaveLength(1);
    expect(delivered.nodes[0]?.topicName).toBe("co2/pepeunit");

    const followers = await publisher.node.services.db.query.inboundFollows.findMany();
    expect(followers.map((row) => row.actorIdentifier)).toEqual([repo.value.id]);
  });

  it("keeps the Repo on a resync of its outbox", async () => {
    const { db, config } = follower.node.services;
    const result = await backfillDueFollows(
      follower.node.federation,
      db,
      config.origin,
      follower.node.services.policy,
      0,
    );
    expect(result.failed).toBe(0);
    expect(result.removed).toBe(0);
    const repos = await db.query.federatedRepos.findMany();
    expect(repos.map((repo) => repo.name)).toEqual(["air-quality"]);
    const units = await db.query.federatedUnits.findMany();
    expect(units.map((unit) => unit.name).sort()).toEqual(["bedroom-air", "kitchen-air"]);
  });
});

describe("outbox cursor", () => {
  it("rejects a malformed cursor", async () => {
    for (const cursor of ["garbage", "r:not-a-uuid", "x:00000000-0000-0000-0000-000000000000"]) {
      const response = await fetch(
        `${publisher.origin}/ap/actors/instance/outbox?cursor=${encodeURIComponent(cursor)}`,
        { headers: { accept: "application/activity+json" } },
      );
      expect(response.status, cursor).toBe(404);
    }
  });

  it("pages through Repos, then Units", async () => {
    const response = await fetch(`${publisher.origin}/ap/actors/instance/outbox?cursor=`, {
      headers: { accept: "application/activity+json" },
    });
    expect(response.status).toBe(200);
    const page = (await response.json()) as { next?: string };
    expect(page.next).toContain(encodeURIComponent("u:00000000-0000-0000-0000-000000000000"));
  });
});

describe("instance resync", () => {
  it("removes what the peer no longer lists", async () => {
    const { db, config } = follower.node.services;
    await follower.node.services.federation.followInstance(new URL(publisher.origin));
    await waitFor("the instance follow to be accepted", async () => {
      const rows = await db.query.outboundFollows.findMany();
      return rows.length === 2 && rows.every((row) => row.state === "accepted") ? true : undefined;
    });

    // A Repo whose Delete was lost: the peer no longer lists it.
    const host = new URL(publisher.origin).host;
    await db.insert(federatedRepos).values({
      iri: `${publisher.origin}/ap/actors/00000000-0000-4000-8000-00000000dead`,
      originHost: host,
      name: "deleted-long-ago",
      repositoryUrl: "https://github.com/example/gone.git",
      platform: "Github",
      receivedAt: new Date(Date.now() - 60_000),
    });

    const result = await backfillDueFollows(
      follower.node.federation,
      db,
      config.origin,
      follower.node.services.policy,
      0,
    );
    expect(result.failed).toBe(0);
    const names = (await db.query.federatedRepos.findMany()).map((repo) => repo.name);
    expect(names).toEqual(["air-quality"]);
  });
});
