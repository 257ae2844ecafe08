/**
 * Git host rules at the inbox, over real HTTP between two in-process nodes with signature
 * verification on: a Repo on a denied host is acknowledged and not stored.
 */
import type { webcrypto } from "node:crypto";
import { signRequest } from "@fedify/fedify";
import { Create, PropertyValue, Service } from "@fedify/vocab";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { federatedRepos } from "../../src/db/schema/index.ts";
import { createGitHostRule, deniedRepositoryCounter } from "../../src/policy/git-hosts.ts";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import { getActorKeyPairs } from "../keys.ts";

let publisher: TestNode;
let follower: TestNode;
let signingKey: webcrypto.CryptoKey;
let keyId: URL;

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

const publisherInstance = () => new URL(`${publisher.origin}/ap/actors/instance`);

/** POSTs a Create of a Repo actor to the follower's shared inbox, signed by the publisher. */
async function deliverRepo(name: string, repositoryUrl: string): Promise<Response> {
  const id = crypto.randomUUID();
  const create = new Create({
    id: new URL(`${publisher.origin}/ap/activities/test/${id}`),
    actor: publisherInstance(),
    object: new Service({
      id: new URL(`${publisher.origin}/ap/actors/${id}`),
      name,
      inbox: new URL(`${publisher.origin}/ap/actors/${id}/inbox`),
      attachments: [
        new PropertyValue({ name: "pepeunit:kind", value: "repo" }),
        new PropertyValue({ name: "pepeunit:repositoryUrl", value: repositoryUrl }),
        new PropertyValue({ name: "pepeunit:platform", value: "Gitlab" }),
      ],
    }),
  });
  const request = new Request(`${follower.origin}/ap/inbox`, {
    method: "POST",
    headers: { "content-type": "application/activity+json" },
    body: JSON.stringify(await create.toJsonLd()),
  });
  return await fetch(await signRequest(request, signingKey, keyId));
}

async function storedRepoNames(): Promise<string[]> {
  const rows = await follower.node.services.db.select().from(federatedRepos);
  return rows.map((row) => row.name).sort();
}

async function peerDenials(): Promise<number> {
  const metric = await deniedRepositoryCounter.get();
  return metric.values.find((value) => value.labels.source === "peer")?.value ?? 0;
}

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  publisher = await startTestNode(adminUrl, "git-hosts-publisher");
  follower = await startTestNode(adminUrl, "git-hosts-follower");
  await follower.node.services.federation.followInstance(new URL(publisher.origin));
  await waitFor(async () => {
    const rows = await follower.node.services.db.query.outboundFollows.findMany();
    return rows[0]?.state === "accepted" ? true : undefined;
  }, "the publisher to accept the follow");

  const [rsa] = await getActorKeyPairs(publisher.node.services.db, "instance");
  if (!rsa) throw new Error("the publisher has no RSA key");
  signingKey = rsa.privateKey;
  const actor = (await (
    await fetch(publisherInstance(), { headers: { accept: "application/activity+json" } })
  ).json()) as { publicKey: { id: string } };
  keyId = new URL(actor.publicKey.id);

  const rule = await createGitHostRule(
    follower.node.services.db,
    { host: "evil.example", kind: "deny", reason: "malware" },
    "admin",
  );
  if (!rule.ok) throw new Error(JSON.stringify(rule.failure));
}, 60_000);

afterAll(async () => {
  await follower?.close();
  await publisher?.close();
});

describe("peer Repos and git host rules", () => {
  it("acknowledges and drops a Repo on a denied host", async () => {
    const before = await peerDenials();
    const response = await deliverRepo("denied-repo", "https://git.evil.example/o/r.git");
    expect(response.status).toBe(202);
    expect(await storedRepoNames()).not.toContain("denied-repo");
    expect(await peerDenials()).toBe(before + 1);
  });

  it("stores a Repo on another host", async () => {
    const response = await deliverRepo("allowed-repo", "https://github.com/o/r.git");
    expect(response.status).toBe(202);
    expect(await storedRepoNames()).toContain("allowed-repo");
  });
});
