import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { unitNodes } from "../../db/schema/index.ts";
import { AttributionCache } from "./attribution.ts";
import { seedCatalogue, type TestCatalogue } from "./test-support.ts";

let database: TestDatabase;
let catalogue: TestCatalogue;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "metering-attribution");
  catalogue = await seedCatalogue(database.db, "attr");
});

afterAll(async () => {
  await database.drop();
});

async function addNode(unitId: string): Promise<string> {
  const [row] = await database.db
    .insert(unitNodes)
    .values({ unitId, type: "Output", topicName: "late" })
    .returning({ id: unitNodes.id });
  if (!row) throw new Error("insert returned no row");
  return row.id;
}

describe("AttributionCache", () => {
  it("resolves UnitNodes and Units after the bulk load", async () => {
    const cache = new AttributionCache(database.db);
    await cache.prepare([], []);
    const [node] = catalogue.unitNodeIds;
    expect(cache.forUnitNode(node)).toEqual({
      unitNodeId: node,
      unitId: catalogue.unitId,
      repoId: catalogue.repoId,
    });
    expect(cache.forUnit(catalogue.otherUnitId)).toEqual({
      unitNodeId: null,
      unitId: catalogue.otherUnitId,
      repoId: catalogue.otherRepoId,
    });
  });

  it("returns null ids for unknown UUIDs", async () => {
    const cache = new AttributionCache(database.db);
    const unknown = randomUUID();
    await cache.prepare([unknown], [unknown]);
    expect(cache.forUnitNode(unknown)).toEqual({ unitNodeId: null, unitId: null, repoId: null });
    expect(cache.forUnit(unknown)).toEqual({ unitNodeId: null, unitId: null, repoId: null });
    expect(cache.size.misses).toBe(1);
  });

  it("looks up ids created after the load in batches", async () => {
    const cache = new AttributionCache(database.db, { lookupBatchSize: 2 });
    await cache.prepare([], []);
    const created = [
      await addNode(catalogue.unitId),
      await addNode(catalogue.unitId),
      await addNode(catalogue.otherUnitId),
    ];
    await cache.prepare(created, []);
    expect(created.map((id) => cache.forUnitNode(id).repoId)).toEqual([
      catalogue.repoId,
      catalogue.repoId,
      catalogue.otherRepoId,
    ]);
  });

  it("remembers a miss until its time runs out", async () => {
    let now = 1_000_000;
    const cache = new AttributionCache(database.db, {
      missTtlMs: 60_000,
      refreshIntervalMs: 3_600_000,
      now: () => now,
    });
    await cache.prepare([], []);
    const id = randomUUID();
    await cache.prepare([id], []);
    await database.db.insert(unitNodes).values({
      id,
      unitId: catalogue.otherUnitId,
      type: "Input",
      topicName: "late-miss",
    });

    now += 59_000;
    await cache.prepare([id], []);
    expect(cache.forUnitNode(id).unitNodeId).toBeNull();

    now += 1_000;
    await cache.prepare([id], []);
    expect(cache.forUnitNode(id).unitId).toBe(catalogue.otherUnitId);
  });

  it("reloads everything when the refresh is due", async () => {
    let now = 0;
    const cache = new AttributionCache(database.db, { refreshIntervalMs: 300_000, now: () => now });
    await cache.prepare([], []);
    const before = cache.size.unitNodes;
    const id = await addNode(catalogue.unitId);
    now = 300_000;
    await cache.prepare([], []);
    expect(cache.size.unitNodes).toBe(before + 1);
    expect(cache.forUnitNode(id).unitId).toBe(catalogue.unitId);
  });
});
