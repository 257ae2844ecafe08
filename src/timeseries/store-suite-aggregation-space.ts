/**
 * Tests of aggregation space snapshots, part of the shared store suite: `registerStoreSuite` in
 * `store-suite.ts` registers them for every store.
 */
import { expect, it } from "vitest";
import type {
  AggregationSpaceSnapshot,
  UnitNodeSpace,
  UserSpace,
} from "../metering/state/aggregation-space.ts";
import type { TestStore } from "./store-suite.ts";
import { addMs, DAY_MS, MINUTE_MS } from "./time.ts";
import { TimeSeriesInputError } from "./validation.ts";

const NOW = new Date("2026-03-10T12:30:20Z");

const USER_A = "eeeeeeee-0000-4000-8000-000000000001";
const USER_B = "eeeeeeee-0000-4000-8000-000000000002";
const NODE_1 = "cccccccc-0000-4000-8000-000000000001";
const NODE_2 = "cccccccc-0000-4000-8000-000000000002";
const NODE_3 = "cccccccc-0000-4000-8000-000000000003";

function snapshot(at: string, unitNodes: UnitNodeSpace[]): AggregationSpaceSnapshot {
  const users = new Map<string | null, UserSpace>();
  for (const entry of unitNodes) {
    const user = users.get(entry.userId) ?? { userId: entry.userId, rows: 0, bytes: 0 };
    user.rows += entry.rows;
    user.bytes += entry.bytes;
    users.set(entry.userId, user);
  }
  return { at: new Date(at), unitNodes, users: [...users.values()], missingTables: [] };
}

/** Two UnitNodes of two known users, one in two tables, and one UnitNode without a known owner. */
function fullSnapshot(at: string): AggregationSpaceSnapshot {
  return {
    ...snapshot(at, [
      { unitNodeId: NODE_2, userId: USER_A, table: "n_last_entry", rows: 10, bytes: 2 ** 40 },
      { unitNodeId: NODE_2, userId: USER_A, table: "aggregation_entry", rows: 3, bytes: 96 },
      { unitNodeId: NODE_1, userId: USER_B, table: "n_last_entry", rows: 0, bytes: 0 },
      { unitNodeId: NODE_3, userId: null, table: "n_last_entry", rows: 7, bytes: 700 },
    ]),
    missingTables: ["window_entry"],
  };
}

/** Registers the aggregation space tests inside a store suite's `describe`. */
export function registerAggregationSpaceTests(store: () => TestStore) {
  it("round-trips an aggregation space snapshot", async () => {
    expect(await store().latestAggregationSpace()).toBeNull();
    const written = fullSnapshot("2026-03-10T12:10:35.250Z");
    await store().writeAggregationSpace(written);
    expect(await store().latestAggregationSpace()).toEqual({
      ...written,
      at: new Date("2026-03-10T12:10:00Z"),
    });
  });

  it("round-trips an empty snapshot", async () => {
    const empty: AggregationSpaceSnapshot = {
      at: new Date("2026-03-10T12:10:00Z"),
      unitNodes: [],
      users: [],
      missingTables: ["n_last_entry", "window_entry", "aggregation_entry"],
    };
    await store().writeAggregationSpace(empty);
    expect(await store().latestAggregationSpace()).toEqual(empty);
  });

  it("replaces a snapshot within its minute", async () => {
    await store().writeAggregationSpace(fullSnapshot("2026-03-10T12:10:05Z"));
    const second = snapshot("2026-03-10T12:10:59Z", [
      { unitNodeId: NODE_1, userId: USER_B, table: "window_entry", rows: 4, bytes: 40 },
    ]);
    await store().writeAggregationSpace(second);
    // The second snapshot no longer lists NODE_2, NODE_3, USER_A or a missing table.
    expect(await store().latestAggregationSpace()).toEqual({
      ...second,
      at: new Date("2026-03-10T12:10:00Z"),
    });
  });

  it("returns the latest of several snapshots", async () => {
    const minutes = ["2026-03-10T12:12:00Z", "2026-03-10T12:10:00Z", "2026-03-10T12:11:00Z"];
    for (const [index, minute] of minutes.entries()) {
      await store().writeAggregationSpace(
        snapshot(minute, [
          { unitNodeId: NODE_1, userId: USER_A, table: "n_last_entry", rows: index, bytes: 1 },
        ]),
      );
    }
    const latest = await store().latestAggregationSpace();
    expect(latest?.at).toEqual(new Date("2026-03-10T12:12:00Z"));
    expect(latest?.unitNodes.map((entry) => entry.rows)).toEqual([0]);
  });

  it("drops aggregation space after 400 days", async () => {
    const cutoff = addMs(new Date("2026-03-10T00:00:00Z"), -400 * DAY_MS);
    await store().writeAggregationSpace(fullSnapshot(addMs(cutoff, -MINUTE_MS).toISOString()));
    const cutoffs = await store().applyRetention(NOW);
    expect(cutoffs.longBefore).toEqual(cutoff);
    expect(await store().latestAggregationSpace()).toBeNull();

    const atCutoff = fullSnapshot(cutoff.toISOString());
    await store().writeAggregationSpace(atCutoff);
    await store().applyRetention(NOW);
    expect(await store().latestAggregationSpace()).toEqual(atCutoff);
  });

  it("rejects invalid snapshots without writing", async () => {
    const good = fullSnapshot("2026-03-10T12:10:00Z");
    const [first] = good.unitNodes;
    if (!first) throw new Error("no UnitNode entry");
    const invalid: Array<[string, AggregationSpaceSnapshot]> = [
      ["at", { ...good, at: new Date(Number.NaN) }],
      ["unitNodes[4]", { ...good, unitNodes: [...good.unitNodes, { ...first }] }],
      ["unitNodes[0].unitNodeId", { ...good, unitNodes: [{ ...first, unitNodeId: "NODE" }] }],
      ["unitNodes[0].userId", { ...good, unitNodes: [{ ...first, userId: "" }] }],
      [
        "unitNodes[0].table",
        { ...good, unitNodes: [{ ...first, table: "other" as UnitNodeSpace["table"] }] },
      ],
      ["unitNodes[0].bytes", { ...good, unitNodes: [{ ...first, bytes: -1 }] }],
      ["users[0].rows", { ...good, users: [{ userId: USER_A, rows: 1.5, bytes: 0 }] }],
      [
        "users[1]",
        {
          ...good,
          users: [
            { userId: null, rows: 1, bytes: 1 },
            { userId: null, rows: 2, bytes: 2 },
          ],
        },
      ],
      ["missingTables[1]", { ...good, missingTables: ["window_entry", "window_entry"] }],
    ];
    for (const [field, bad] of invalid) {
      const attempt = store().writeAggregationSpace(bad);
      await expect(attempt, field).rejects.toThrow(TimeSeriesInputError);
      await expect(store().writeAggregationSpace(bad), field).rejects.toMatchObject({ field });
    }
    expect(await store().latestAggregationSpace()).toBeNull();
  });
}
