import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import {
  federatedRepos,
  federatedUnits,
  type GitPlatform,
  repos,
  units,
  type Visibility,
} from "../db/schema/index.ts";
import {
  listFederatedRepos,
  localRepoIri,
  type RepoSearchHit,
  type RepoSearchParams,
  searchRepos,
} from "./search.ts";

const ORIGIN = new URL("https://node.example.com");
const PEER = "peer.example.net";
const OTHER_PEER = "other.example.org:8443";

let database: TestDatabase;
const localIds = new Map<string, string>();

interface LocalSeed {
  name: string;
  summary?: string;
  platform?: GitPlatform;
  compilable?: boolean;
  visibility?: Visibility;
  updatedAt: string;
  unit?: { name: string; visibility: Visibility };
}

interface FederatedSeed {
  host: string;
  name: string;
  summary?: string;
  platform?: GitPlatform;
  compilable?: boolean;
  updatedAt: string;
  unitName?: string;
}

const SAME_TIME = "2026-03-01T00:00:00.000Z";

const LOCAL: LocalSeed[] = [
  { name: "weather-station", summary: "ESP32 outdoor sensor", updatedAt: "2026-01-10T00:00:00Z" },
  {
    name: "greenhouse",
    summary: "Soil thermometer for a greenhouse",
    updatedAt: "2026-01-11T00:00:00Z",
    unit: { name: "green-unit-1", visibility: "Public" },
  },
  {
    name: "fan-control",
    summary: "Relay board",
    platform: "Gitlab",
    compilable: true,
    updatedAt: "2026-01-12T00:00:00Z",
  },
  {
    name: "secret-weather",
    summary: "weather but private",
    visibility: "Private",
    updatedAt: "2026-01-13T00:00:00Z",
  },
  {
    name: "inner-weather",
    summary: "weather but internal",
    visibility: "Internal",
    updatedAt: "2026-01-14T00:00:00Z",
    unit: { name: "inner-unit", visibility: "Internal" },
  },
  {
    name: "hidden-unit-repo",
    summary: "public repo, internal unit",
    updatedAt: "2026-01-15T00:00:00Z",
    unit: { name: "quiet-unit", visibility: "Internal" },
  },
  { name: "probes-kit", updatedAt: "2025-12-02T00:00:00Z" },
  { name: "probe-kit", updatedAt: "2025-12-01T00:00:00Z" },
  { name: "tie-local-a", updatedAt: SAME_TIME },
  { name: "tie-local-b", updatedAt: SAME_TIME },
];

const FEDERATED: FederatedSeed[] = [
  {
    host: PEER,
    name: "thermometer",
    summary: "weather logger",
    updatedAt: "2026-02-01T00:00:00Z",
    unitName: "attic-probe",
  },
  {
    host: PEER,
    name: "led-strip",
    summary: "WS2812 driver",
    platform: "Gitlab",
    compilable: true,
    updatedAt: "2026-02-02T00:00:00Z",
  },
  {
    host: OTHER_PEER,
    name: "weather-relay",
    summary: "Forwards weather data",
    updatedAt: "2026-02-03T00:00:00Z",
    unitName: "green-unit-2",
  },
  { host: OTHER_PEER, name: "tie-remote-a", updatedAt: SAME_TIME },
  { host: PEER, name: "tie-remote-b", updatedAt: SAME_TIME },
];

function federatedIri(seed: { host: string; name: string }): string {
  return `https://${seed.host}/ap/actors/${seed.name}`;
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "catalogue-search");
  for (const seed of LOCAL) {
    const [row] = await database.db
      .insert(repos)
      .values({
        name: seed.name,
        summary: seed.summary ?? "",
        repositoryUrl: `https://github.com/example/${seed.name}.git`,
        platform: seed.platform ?? "Github",
        isCompilable: seed.compilable ?? false,
        visibility: seed.visibility ?? "Public",
        updatedAt: new Date(seed.updatedAt),
      })
      .returning({ id: repos.id });
    if (!row) throw new Error("insert returned no row");
    localIds.set(seed.name, row.id);
    if (seed.unit) {
      await database.db
        .insert(units)
        .values({ repoId: row.id, name: seed.unit.name, visibility: seed.unit.visibility });
    }
  }
  for (const seed of FEDERATED) {
    const iri = federatedIri(seed);
    await database.db.insert(federatedRepos).values({
      iri,
      originHost: seed.host,
      name: seed.name,
      summary: seed.summary ?? "",
      repositoryUrl: `https://gitlab.com/remote/${seed.name}.git`,
      platform: seed.platform ?? "Github",
      isCompilable: seed.compilable ?? false,
      remoteUpdatedAt: new Date(seed.updatedAt),
    });
    if (seed.unitName) {
      await database.db.insert(federatedUnits).values({
        iri: `${iri}/units/${seed.unitName}`,
        repoIri: iri,
        originHost: seed.host,
        name: seed.unitName,
        nodes: [{ id: "n1", type: "Output", topicName: "temp/pepeunit" }],
      });
    }
  }
});

afterAll(async () => {
  await database.drop();
});

async function search(params: Partial<RepoSearchParams>): Promise<RepoSearchHit[]> {
  const result = await searchRepos(database.db, ORIGIN, { limit: 100, ...params });
  if (!result.ok) throw new Error(`search failed: ${JSON.stringify(result.failure)}`);
  return result.value.items;
}

async function names(params: Partial<RepoSearchParams>): Promise<string[]> {
  return (await search(params)).map((hit) => hit.name);
}

/** Pages through a search with `limit` and returns the IRIs in page order. */
async function pageThrough(params: Partial<RepoSearchParams>, limit: number): Promise<string[]> {
  const iris: string[] = [];
  let cursor: string | undefined;
  for (let pageNumber = 0; pageNumber < 50; pageNumber += 1) {
    const result = await searchRepos(database.db, ORIGIN, { ...params, limit, cursor });
    if (!result.ok) throw new Error(`search failed: ${JSON.stringify(result.failure)}`);
    expect(result.value.items.length).toBeLessThanOrEqual(limit);
    iris.push(...result.value.items.map((hit) => hit.iri));
    if (result.value.next === null) return iris;
    cursor = result.value.next;
  }
  throw new Error("pagination did not end after 50 pages");
}

describe("searchRepos", () => {
  it("lists by recency without a query", async () => {
    const all = await names({});
    // Rows with the same time are ordered by IRI, descending; local IRIs end in random UUIDs.
    const localTies = ["tie-local-a", "tie-local-b"].sort((a, b) =>
      localRepoIri(ORIGIN, localIds.get(a) ?? "") < localRepoIri(ORIGIN, localIds.get(b) ?? "")
        ? 1
        : -1,
    );
    expect(all.slice(0, 4)).toEqual(["tie-remote-b", "tie-remote-a", ...localTies]);
    expect(all.slice(4)).toEqual([
      "weather-relay",
      "led-strip",
      "thermometer",
      "hidden-unit-repo",
      "fan-control",
      "greenhouse",
      "weather-station",
      "probes-kit",
      "probe-kit",
    ]);
  });

  it("never returns Private or Internal local Repos", async () => {
    for (const params of [
      {},
      { query: "weather" },
      { query: "secret" },
      { query: "inner" },
      { unit: "inner" },
    ]) {
      const found = await names(params);
      expect(found).not.toContain("secret-weather");
      expect(found).not.toContain("inner-weather");
    }
  });

  it("ranks name matches above summary matches", async () => {
    const found = await names({ query: "weather" });
    expect(found).toHaveLength(3);
    expect(found.slice(0, 2).sort()).toEqual(["weather-relay", "weather-station"]);
    expect(found[2]).toBe("thermometer");
  });

  it("matches word prefixes", async () => {
    expect(await names({ query: "weath" })).toEqual(
      expect.arrayContaining(["weather-station", "weather-relay", "thermometer"]),
    );
    expect(await names({ query: "thermo" })).toEqual(["thermometer", "greenhouse"]);
  });

  it("ranks exact words above prefix-only matches", async () => {
    // Both names start with "probe"; only probe-kit has the exact word, though probes-kit is newer.
    expect(await names({ query: "probe" })).toEqual(["probe-kit", "probes-kit"]);
    expect(await names({ query: "probes" })).toEqual(["probes-kit"]);
  });

  it("supports web search syntax", async () => {
    expect(await names({ query: "weather -relay" })).not.toContain("weather-relay");
    expect(await names({ query: '"relay board"' })).toEqual(["fan-control"]);
    expect((await names({ query: "relay or ws2812" })).sort()).toEqual(
      ["fan-control", "led-strip", "weather-relay"].sort(),
    );
  });

  it("filters by platform and compilable", async () => {
    expect((await names({ platform: "Gitlab" })).sort()).toEqual(["fan-control", "led-strip"]);
    expect((await names({ compilable: true })).sort()).toEqual(["fan-control", "led-strip"]);
    const notCompilable = await names({ compilable: false });
    expect(notCompilable).not.toContain("fan-control");
    expect(notCompilable).toContain("weather-station");
  });

  it("filters by origin", async () => {
    const local = await search({ origin: "local" });
    expect(local.every((hit) => hit.origin.isLocal)).toBe(true);
    expect(local).toHaveLength(8);
    expect(await search({ origin: ORIGIN.host })).toEqual(local);
    expect((await names({ origin: PEER })).sort()).toEqual([
      "led-strip",
      "thermometer",
      "tie-remote-b",
    ]);
    expect((await names({ origin: "OTHER.example.org:8443" })).sort()).toEqual([
      "tie-remote-a",
      "weather-relay",
    ]);
    expect(await names({ origin: "unknown.example" })).toEqual([]);
  });

  it("filters by Unit name across local and federated Units", async () => {
    expect((await names({ unit: "green-unit" })).sort()).toEqual(["greenhouse", "weather-relay"]);
    expect(await names({ unit: "ATTIC" })).toEqual(["thermometer"]);
    expect(await names({ unit: "quiet" })).toEqual([]);
    expect(await names({ unit: "green_unit" })).toEqual([]);
    expect(await names({ unit: "unit", query: "weather" })).toEqual(["weather-relay"]);
  });

  it("reports origin and IRI of each result", async () => {
    const [local] = await search({ query: "weather-station" });
    expect(local).toMatchObject({
      iri: localRepoIri(ORIGIN, localIds.get("weather-station") ?? ""),
      pepeunitId: localIds.get("weather-station"),
      origin: { host: "node.example.com", isLocal: true },
      repositoryUrl: "https://github.com/example/weather-station.git",
    });
    expect(local?.iri).toBe(
      `https://node.example.com/ap/actors/${localIds.get("weather-station")}`,
    );
    const [remote] = await search({ query: "led-strip" });
    expect(remote).toMatchObject({
      iri: `https://${PEER}/ap/actors/led-strip`,
      pepeunitId: null,
      origin: { host: PEER, isLocal: false },
      updatedAt: "2026-02-02T00:00:00.000Z",
    });
  });

  it.each([1, 2, 3, 5])("pages without repeats or gaps at limit %i", async (limit) => {
    for (const params of [{}, { query: "weather" }, { query: "tie" }, { origin: PEER }]) {
      const whole = (await search(params)).map((hit) => hit.iri);
      const paged = await pageThrough(params, limit);
      expect(paged).toEqual(whole);
      expect(new Set(paged).size).toBe(paged.length);
    }
  });

  it("rejects a cursor issued for other filters", async () => {
    const first = await searchRepos(database.db, ORIGIN, { limit: 1, query: "weather" });
    if (!first.ok || first.value.next === null) throw new Error("expected a second page");
    const reused = await searchRepos(database.db, ORIGIN, {
      limit: 1,
      query: "relay",
      cursor: first.value.next,
    });
    expect(reused).toMatchObject({ ok: false, failure: { kind: "invalid", field: "cursor" } });
    const garbage = await searchRepos(database.db, ORIGIN, { limit: 1, cursor: "not-a-cursor" });
    expect(garbage).toMatchObject({ ok: false, failure: { kind: "invalid", field: "cursor" } });
  });

  it("returns nothing for punctuation-only queries", async () => {
    expect(await names({ query: "!!! ..." })).toEqual([]);
  });
});

describe("listFederatedRepos", () => {
  it("lists federated Repos by IRI with their Units", async () => {
    const entries = await listFederatedRepos(database.db, { limit: 100 });
    const iris = entries.map((entry) => entry.repo.iri);
    expect(iris).toHaveLength(FEDERATED.length);
    expect(
      entries.find((entry) => entry.repo.name === "thermometer")?.units.map((unit) => unit.name),
    ).toEqual(["attic-probe"]);
    const afterFirst = await listFederatedRepos(database.db, { limit: 100, after: iris[0] });
    expect(afterFirst.map((entry) => entry.repo.iri)).toEqual(iris.slice(1));
    const onePeer = await listFederatedRepos(database.db, { limit: 100, originHost: PEER });
    expect(onePeer.every((entry) => entry.repo.originHost === PEER)).toBe(true);
    expect(onePeer).toHaveLength(3);
  });
});
