/**
 * Bad input at the inbox, over real HTTP between two in-process nodes with signature
 * verification on: every case gets a clear status and leaves the catalogue unchanged.
 */
import type { webcrypto } from "node:crypto";
import { signRequest } from "@fedify/fedify";
import { Create, Delete, Follow, PropertyValue, Service, Tombstone, Update } from "@fedify/vocab";
import { count } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { federatedRepos, inboundFollows, processedActivities } from "../../src/db/schema/index.ts";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import { getActorKeyPairs } from "../keys.ts";

let nodeA: TestNode;
let nodeB: TestNode;
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

async function snapshot() {
  const db = nodeB.node.services.db;
  const [repos] = await db.select({ n: count() }).from(federatedRepos);
  const [processed] = await db.select({ n: count() }).from(processedActivities);
  const [follows] = await db.select({ n: count() }).from(inboundFollows);
  return { repos: repos?.n, processed: processed?.n, follows: follows?.n };
}

/** POSTs `body` to B's shared inbox, signed with A's instance actor key. */
async function deliver(body: string, contentType = "application/activity+json") {
  const request = new Request(`${nodeB.origin}/ap/inbox`, {
    method: "POST",
    headers: { "content-type": contentType },
    body,
  });
  return await fetch(await signRequest(request, signingKey, keyId));
}

function repoActor(id: string, name: string) {
  return new Service({
    id: new URL(`${nodeA.origin}/ap/actors/${id}`),
    name,
    inbox: new URL(`${nodeA.origin}/ap/actors/${id}/inbox`),
    attachments: [
      new PropertyValue({ name: "pepeunit:kind", value: "repo" }),
      new PropertyValue({ name: "pepeunit:repositoryUrl", value: "https://github.com/x/y.git" }),
      new PropertyValue({ name: "pepeunit:platform", value: "Github" }),
    ],
  });
}

function activityIri(label: string): URL {
  return new URL(`${nodeA.origin}/ap/activities/test/${label}-${crypto.randomUUID()}`);
}

const instanceA = () => new URL(`${nodeA.origin}/ap/actors/instance`);

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  nodeA = await startTestNode(adminUrl, "a");
  nodeB = await startTestNode(adminUrl, "b");
  await nodeB.node.services.federation.followInstance(new URL(nodeA.origin));
  await waitFor(async () => {
    const rows = await nodeB.node.services.db.query.outboundFollows.findMany();
    return rows[0]?.state === "accepted" ? true : undefined;
  }, "A to accept B's follow");

  const [rsa] = await getActorKeyPairs(nodeA.node.services.db, "instance");
  if (!rsa) throw new Error("node A has no RSA key");
  signingKey = rsa.privateKey;
  const actor = (await (
    await fetch(instanceA(), { headers: { accept: "application/activity+json" } })
  ).json()) as { publicKey: { id: string } };
  keyId = new URL(actor.publicKey.id);
}, 60_000);

afterAll(async () => {
  await nodeB?.close();
  await nodeA?.close();
});

describe("inbox bad input", () => {
  it("rejects malformed JSON", async () => {
    const before = await snapshot();
    const response = await deliver('{"type": "Create", "actor": ');
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe("malformed_json");
    expect(await snapshot()).toEqual(before);
  });

  it("rejects an oversized body before parsing", async () => {
    const before = await snapshot();
    const padding = "x".repeat(nodeB.node.services.config.maxInboxBodyBytes + 1);
    const response = await deliver(JSON.stringify({ type: "Create", padding }));
    expect(response.status).toBe(413);
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe("payload_too_large");
    expect(await snapshot()).toEqual(before);
  });

  it("rejects an unknown activity type", async () => {
    const before = await snapshot();
    const response = await deliver(
      JSON.stringify({
        "@context": "https://www.w3.org/ns/activitystreams",
        id: activityIri("unknown").href,
        type: "Frobnicate",
        actor: instanceA().href,
        object: `${nodeA.origin}/ap/actors/instance`,
      }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("unsupported_activity_type");
    expect(body.error.message).toContain("Frobnicate");
    expect(await snapshot()).toEqual(before);
  });

  it("rejects a body that is not JSON", async () => {
    const response = await deliver("hello", "text/plain");
    expect(response.status).toBe(415);
  });

  it("rejects JSON-LD that is not an activity", async () => {
    const before = await snapshot();
    const response = await deliver(JSON.stringify(["not", "an", "object"]));
    expect(response.status).toBe(400);
    expect(await snapshot()).toEqual(before);
  });

  it("ignores an Update of an unknown Repo", async () => {
    const before = await snapshot();
    const update = new Update({
      id: activityIri("update"),
      actor: instanceA(),
      object: repoActor(crypto.randomUUID(), "never-created"),
    });
    const response = await deliver(JSON.stringify(await update.toJsonLd()));
    expect(response.status).toBe(202);
    const after = await snapshot();
    expect(after.repos).toBe(before.repos);
  });

  it("ignores a Delete of an unknown object", async () => {
    const before = await snapshot();
    const deletion = new Delete({
      id: activityIri("delete"),
      actor: instanceA(),
      object: new Tombstone({ id: new URL(`${nodeA.origin}/ap/actors/${crypto.randomUUID()}`) }),
    });
    const response = await deliver(JSON.stringify(await deletion.toJsonLd()));
    expect(response.status).toBe(202);
    expect((await snapshot()).repos).toBe(before.repos);
  });

  it("does not record a Follow of an unknown actor", async () => {
    const before = await snapshot();
    const follow = new Follow({
      id: activityIri("follow"),
      actor: instanceA(),
      object: new URL(`${nodeB.origin}/ap/actors/${crypto.randomUUID()}`),
    });
    const response = await deliver(JSON.stringify(await follow.toJsonLd()));
    expect(response.status).toBe(202);
    expect((await snapshot()).follows).toBe(before.follows);
  });

  it("applies a duplicate delivery once", async () => {
    const before = await snapshot();
    const create = new Create({
      id: activityIri("create"),
      actor: instanceA(),
      object: repoActor(crypto.randomUUID(), "duplicated"),
    });
    const body = JSON.stringify(await create.toJsonLd());
    const first = await deliver(body);
    const second = await deliver(body);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const after = await snapshot();
    expect(after.repos).toBe((before.repos ?? 0) + 1);
    expect(after.processed).toBe((before.processed ?? 0) + 1);
  });
});
