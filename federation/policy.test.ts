/**
 * Domain rules applied to federation between two in-process nodes over real HTTP: a suspended
 * domain cannot deliver, be followed or be fetched from, and a domain whose content is rejected
 * stays followed while none of its Repos are stored.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRepo } from "../src/catalogue/repos.ts";
import { FederationLookupError } from "../src/federation-port.ts";
import type { DatabasePolicyEngine } from "../src/policy/engine.ts";
import { createDomainRule, liftDomainRule } from "../src/policy/rules.ts";
import { startTestNode, type TestNode } from "../test/nodes.ts";

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

/** Adds a deny rule for the loopback host of both nodes on the follower and applies it at once. */
async function denyPublisher(severity: "suspend" | "reject_content") {
  const { db, policy } = follower.node.services;
  const rule = await createDomainRule(
    db,
    { domain: "127.0.0.1", kind: "deny", severity, reason: `test ${severity}` },
    "admin",
  );
  if (!rule.ok) throw new Error(JSON.stringify(rule));
  await (policy as DatabasePolicyEngine).reload();
  return rule.value;
}

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  publisher = await startTestNode(adminUrl, "policy-publisher");
  follower = await startTestNode(adminUrl, "policy-follower");
}, 60_000);

afterAll(async () => {
  await follower?.close();
  await publisher?.close();
});

describe("domain rules in federation", () => {
  it("refuses to follow a suspended domain", async () => {
    const rule = await denyPublisher("suspend");
    const failure = await follower.node.services.federation
      .followInstance(new URL(publisher.origin))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(FederationLookupError);
    expect((failure as Error).message).toContain("suspended");
    expect(await follower.node.services.db.query.remoteActors.findMany()).toEqual([]);

    await liftDomainRule(follower.node.services.db, rule.id, "admin");
    await (follower.node.services.policy as DatabasePolicyEngine).reload();
  });

  it("stores no content of a rejected domain", async () => {
    const { db } = follower.node.services;
    await follower.node.services.federation.followInstance(new URL(publisher.origin));
    await waitFor("the follow to be accepted", async () => {
      const rows = await db.query.outboundFollows.findMany();
      return rows[0]?.state === "accepted" ? true : undefined;
    });

    const rule = await denyPublisher("reject_content");
    const repo = await createRepo(publisher.node.services.db, {
      name: "rejected-repo",
      repositoryUrl: "https://github.com/example/rejected-repo.git",
      platform: "Github",
    });
    expect(repo.ok).toBe(true);
    // The publisher delivers the Create; the follower accepts it and stores nothing.
    await waitFor("the publisher to send its change", async () => {
      const rows = await publisher.node.services.pool.query(
        "select count(*)::int as n from catalogue_changes",
      );
      return rows.rows[0]?.n === 0 ? true : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await db.query.federatedRepos.findMany()).toEqual([]);

    await liftDomainRule(db, rule.id, "admin");
    await (follower.node.services.policy as DatabasePolicyEngine).reload();
  });

  it("answers deliveries from a suspended domain with 403", async () => {
    await denyPublisher("suspend");
    const response = await fetch(`${follower.origin}/ap/inbox`, {
      method: "POST",
      headers: {
        "content-type": "application/activity+json",
        signature: `keyId="${publisher.origin}/ap/actors/instance#main-key",algorithm="rsa-sha256",headers="(request-target) host date",signature="AAAA"`,
      },
      body: JSON.stringify({ type: "Create", actor: `${publisher.origin}/ap/actors/instance` }),
    });
    expect(response.status).toBe(403);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe("domain_blocked");
  });
});
