import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import {
  federatedRepos,
  federatedUnits,
  inboundFollows,
  outboundFollows,
  remoteActors,
  repos,
} from "../../db/schema/index.ts";
import { adminRequest, createTestApi, FakeFederationPort } from "./test-app.ts";

let database: TestDatabase;
let app: Hono;
let federation: FakeFederationPort;

interface ErrorJson {
  error: { code: string; message: string; details?: { issues?: Array<{ field: string }> } };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "api-federation");
  federation = new FakeFederationPort();
  app = createTestApi(database, federation);

  await database.db.insert(repos).values([
    {
      name: "weather-station",
      repositoryUrl: "https://github.com/example/weather-station.git",
      platform: "Github",
    },
    {
      name: "weather-private",
      repositoryUrl: "https://github.com/example/weather-private.git",
      platform: "Github",
      visibility: "Private",
    },
  ]);
  await database.db.insert(federatedRepos).values({
    iri: "https://peer.example.net/ap/actors/r1",
    originHost: "peer.example.net",
    name: "weather-relay",
    repositoryUrl: "https://gitlab.com/remote/weather-relay.git",
    platform: "Gitlab",
  });
  await database.db.insert(federatedUnits).values({
    iri: "https://peer.example.net/ap/units/u1",
    repoIri: "https://peer.example.net/ap/actors/r1",
    originHost: "peer.example.net",
    name: "roof-probe",
    nodes: [{ id: "n1", type: "Output", topicName: "temp/pepeunit" }],
  });

  const [followed, follower] = await database.db
    .insert(remoteActors)
    .values([
      {
        iri: "https://peer.example.net/ap/actors/instance",
        host: "peer.example.net",
        type: "Application",
        inboxUrl: "https://peer.example.net/ap/actors/instance/inbox",
        isPepeunitNode: true,
      },
      {
        iri: "https://social.example.org/users/alice",
        host: "social.example.org",
        type: "Person",
        name: "Alice",
        inboxUrl: "https://social.example.org/users/alice/inbox",
      },
    ])
    .returning({ id: remoteActors.id });
  if (!followed || !follower) throw new Error("insert returned no rows");
  await database.db.insert(outboundFollows).values({
    remoteActorId: followed.id,
    followActivityIri: "https://node.example.com/ap/follows/1",
    state: "accepted",
  });
  await database.db.insert(inboundFollows).values([
    {
      actorIdentifier: "instance",
      remoteActorId: followed.id,
      followActivityIri: "https://peer.example.net/f/1",
    },
    {
      actorIdentifier: "repo-1",
      remoteActorId: follower.id,
      followActivityIri: "https://social.example.org/f/1",
    },
    {
      actorIdentifier: "repo-2",
      remoteActorId: follower.id,
      followActivityIri: "https://social.example.org/f/2",
    },
  ]);
});

afterAll(async () => {
  await database.drop();
});

describe("GET /search/repos", () => {
  it("needs no token and returns local and federated Repos", async () => {
    const response = await app.request("/api/v1/search/repos?q=weath");
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      items: Array<{ name: string; origin: { host: string; isLocal: boolean } }>;
      next: string | null;
    };
    expect(body.items.map((item) => item.name).sort()).toEqual([
      "weather-relay",
      "weather-station",
    ]);
    expect(body.items.find((item) => item.name === "weather-relay")?.origin).toEqual({
      host: "peer.example.net",
      isLocal: false,
    });
    expect(body.next).toBeNull();
  });

  it("applies filters from the query string", async () => {
    const local = await app.request("/api/v1/search/repos?origin=local&compilable=false");
    const localBody = (await local.json()) as { items: Array<{ name: string }> };
    expect(localBody.items.map((item) => item.name)).toEqual(["weather-station"]);
    const byUnit = await app.request("/api/v1/search/repos?unit=roof");
    const unitBody = (await byUnit.json()) as { items: Array<{ name: string }> };
    expect(unitBody.items.map((item) => item.name)).toEqual(["weather-relay"]);
  });

  it("pages with the Link header", async () => {
    const first = await app.request("/api/v1/search/repos?limit=1");
    const link = first.headers.get("link");
    expect(link).toMatch(/^<\/api\/v1\/search\/repos\?limit=1&cursor=[^>]+>; rel="next"$/);
    const nextUrl = link?.slice(1, link.indexOf(">")) ?? "";
    const second = await app.request(nextUrl);
    const firstBody = (await first.json()) as { items: Array<{ iri: string }> };
    const secondBody = (await second.json()) as {
      items: Array<{ iri: string }>;
      next: string | null;
    };
    expect(secondBody.items).toHaveLength(1);
    expect(secondBody.items[0]?.iri).not.toBe(firstBody.items[0]?.iri);
    expect(secondBody.next).toBeNull();
  });

  it.each([
    ["limit=0", "limit"],
    ["limit=101", "limit"],
    ["limit=ten", "limit"],
    ["compilable=yes", "compilable"],
    ["platform=Bitbucket", "platform"],
    ["origin=http://peer.example.net", "origin"],
    ["cursor=bm90LWEtY3Vyc29y", "cursor"],
  ])("answers 400 to %s", async (query, field) => {
    const response = await app.request(`/api/v1/search/repos?${query}`);
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details?.issues?.[0]?.field).toBe(field);
  });
});

describe("GET /catalogue", () => {
  it("lists federated Repos with their Units", async () => {
    const response = await app.request("/api/v1/catalogue", adminRequest("GET"));
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      items: Array<{
        name: string;
        originHost: string;
        units: Array<{ name: string; nodes: unknown[] }>;
      }>;
    };
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatchObject({
      name: "weather-relay",
      originHost: "peer.example.net",
      units: [
        { name: "roof-probe", nodes: [{ id: "n1", type: "Output", topicName: "temp/pepeunit" }] },
      ],
    });
  });

  it("needs the admin token", async () => {
    expect((await app.request("/api/v1/catalogue")).status).toBe(401);
  });
});

describe("instance follows", () => {
  it("follows an instance through the federation port", async () => {
    const response = await app.request(
      "/api/v1/instances/follow",
      adminRequest("POST", { target: "https://other.example.org" }),
    );
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({
      actorIri: "https://other.example.org/ap/actors/instance",
      host: "other.example.org",
      state: "pending",
    });
    expect(federation.followed.has("other.example.org")).toBe(true);
  });

  it("answers 502 with the lookup message", async () => {
    const response = await app.request(
      "/api/v1/instances/follow",
      adminRequest("POST", { target: "https://unreachable.example" }),
    );
    expect(response.status).toBe(502);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("federation_lookup_failed");
    expect(body.error.message).toContain("no ActivityPub actor found");
  });

  it.each([
    [{ target: "ftp://other.example.org" }, "target"],
    [{ target: "not a url" }, "target"],
    [{}, "target"],
    [{ target: "https://other.example.org", force: true }, "force"],
  ])("answers 400 to %j", async (body, field) => {
    const response = await app.request("/api/v1/instances/follow", adminRequest("POST", body));
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorJson).error.details?.issues?.[0]?.field).toBe(field);
  });

  it("unfollows, then answers 404 for an unknown follow", async () => {
    await app.request(
      "/api/v1/instances/follow",
      adminRequest("POST", { target: "https://gone.example.org" }),
    );
    const first = await app.request(
      "/api/v1/instances/follow",
      adminRequest("DELETE", { target: "https://gone.example.org" }),
    );
    expect(first.status).toBe(204);
    const second = await app.request(
      "/api/v1/instances/follow",
      adminRequest("DELETE", { target: "https://gone.example.org" }),
    );
    expect(second.status).toBe(404);
    expect(((await second.json()) as ErrorJson).error.code).toBe("follow_not_found");
  });

  it("needs the admin token", async () => {
    const response = await app.request("/api/v1/instances/follow", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer nope" },
      body: JSON.stringify({ target: "https://other.example.org" }),
    });
    expect(response.status).toBe(403);
  });
});

describe("GET /peers", () => {
  it("lists remote actors with both follow directions", async () => {
    const response = await app.request("/api/v1/peers", adminRequest("GET"));
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      items: Array<{ host: string; outbound: { state: string } | null; inbound: unknown }>;
    };
    const byHost = Object.fromEntries(body.items.map((item) => [item.host, item]));
    expect(byHost["peer.example.net"]).toMatchObject({
      isPepeunitNode: true,
      outbound: { state: "accepted" },
      inbound: { followsInstance: true, followedRepoCount: 0 },
    });
    expect(byHost["social.example.org"]).toMatchObject({
      name: "Alice",
      outbound: null,
      inbound: { followsInstance: false, followedRepoCount: 2 },
    });
  });

  it("pages peers one at a time", async () => {
    const first = await app.request("/api/v1/peers?limit=1", adminRequest("GET"));
    const firstBody = (await first.json()) as {
      items: Array<{ iri: string }>;
      next: string | null;
    };
    expect(firstBody.next).not.toBeNull();
    const second = await app.request(
      `/api/v1/peers?limit=1&cursor=${firstBody.next ?? ""}`,
      adminRequest("GET"),
    );
    const secondBody = (await second.json()) as {
      items: Array<{ iri: string }>;
      next: string | null;
    };
    expect(secondBody.items[0]?.iri).not.toBe(firstBody.items[0]?.iri);
    expect(secondBody.next).toBeNull();
  });
});
