import type { KvKey } from "@fedify/fedify";
import { Temporal as TemporalPolyfill } from "@js-temporal/polyfill";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../test/postgres.ts";
import { PgKvStore } from "./kv.ts";

let database: TestDatabase;
let store: PgKvStore;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "kv");
  store = new PgKvStore(database.pool, { listPageSize: 2 });
});

afterAll(async () => {
  await database.drop();
});

beforeEach(async () => {
  await database.pool.query("truncate fedify_kv");
});

/**
 * Builds a Temporal.Duration for the store. Node 24 has no global Temporal, so Fedify uses the
 * polyfill at run time while its types name the standard one.
 */
function duration(fields: {
  hours?: number;
  minutes?: number;
  seconds?: number;
  milliseconds?: number;
}) {
  return TemporalPolyfill.Duration.from(fields) as unknown as Temporal.Duration;
}

/** Makes the row of `key` look as if its TTL ran out, without waiting for it. */
async function expire(key: KvKey): Promise<void> {
  const result = await database.pool.query(
    "update fedify_kv set expires_at = now() - interval '1 second' where key = $1::text[]",
    [[...key]],
  );
  expect(result.rowCount).toBe(1);
}

async function collect(prefix?: KvKey): Promise<Array<{ key: KvKey; value: unknown }>> {
  const entries: Array<{ key: KvKey; value: unknown }> = [];
  for await (const entry of store.list(prefix)) entries.push(entry);
  return entries;
}

describe("PgKvStore get, set and delete", () => {
  it("round-trips JSON values", async () => {
    const values: unknown[] = [
      "text",
      42,
      1.5,
      true,
      null,
      [1, "two", { three: 3 }],
      { nested: { list: [], text: "ключ" }, empty: {} },
    ];
    for (const [index, value] of values.entries()) {
      await store.set(["round-trip", String(index)], value);
      expect(await store.get(["round-trip", String(index)])).toEqual(value);
    }
  });

  it("returns undefined for an absent key", async () => {
    expect(await store.get(["absent"])).toBeUndefined();
  });

  it("overwrites a value and its TTL", async () => {
    await store.set(["k"], 1, { ttl: duration({ seconds: 1 }) });
    await store.set(["k"], 2);
    const result = await database.pool.query(
      "select value, expires_at from fedify_kv where key = '{k}'",
    );
    expect(result.rows).toEqual([{ value: 2, expires_at: null }]);
  });

  it("deletes a key", async () => {
    await store.set(["k"], "v");
    await store.delete(["k"]);
    expect(await store.get(["k"])).toBeUndefined();
    await store.delete(["never-set"]);
  });

  it("treats set to undefined as delete", async () => {
    await store.set(["k"], "v");
    await store.set(["k"], undefined);
    const result = await database.pool.query("select count(*)::int as count from fedify_kv");
    expect(result.rows[0].count).toBe(0);
  });

  it("keeps key parts apart", async () => {
    await store.set(["a", "b"], "two parts");
    await store.set(["a,b"], "one part with a comma");
    await store.set(['a"b'], "one part with a quote");
    await store.set([""], "empty part");
    expect(await store.get(["a", "b"])).toBe("two parts");
    expect(await store.get(["a,b"])).toBe("one part with a comma");
    expect(await store.get(['a"b'])).toBe("one part with a quote");
    expect(await store.get([""])).toBe("empty part");
    expect(await store.get(["a"])).toBeUndefined();
  });

  it("rejects an empty key", async () => {
    await expect(store.get([] as unknown as KvKey)).rejects.toThrow(TypeError);
  });

  it("rejects a NUL character in a value", async () => {
    // jsonb cannot store U+0000, so the write fails instead of changing the string.
    await expect(store.set(["k"], "before\u0000after")).rejects.toThrow(/unicode/i);
    expect(await store.get(["k"])).toBeUndefined();
  });

  it("rejects a non-serialisable value", async () => {
    await expect(store.set(["k"], () => 1)).rejects.toThrow(/not JSON-serialisable/);
  });
});

describe("PgKvStore TTL", () => {
  it("stores the expiry from the TTL", async () => {
    await store.set(["k"], "v", { ttl: duration({ hours: 1 }) });
    const result = await database.pool.query(
      `select expires_at > now() + interval '59 minutes' as after_lower,
              expires_at <= now() + interval '1 hour' as before_upper
         from fedify_kv where key = '{k}'`,
    );
    expect(result.rows).toEqual([{ after_lower: true, before_upper: true }]);
  });

  it("never returns an expired entry", async () => {
    await store.set(["k"], "v", { ttl: duration({ hours: 1 }) });
    await store.set(["other"], "stays");
    await expire(["k"]);
    expect(await store.get(["k"])).toBeUndefined();
    expect(await collect()).toEqual([{ key: ["other"], value: "stays" }]);
  });

  it("expires a short TTL in real time", async () => {
    await store.set(["k"], "v", { ttl: duration({ milliseconds: 200 }) });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await store.get(["k"])).toBeUndefined();
  });

  it("rejects a negative TTL", async () => {
    await expect(store.set(["k"], "v", { ttl: duration({ seconds: -1 }) })).rejects.toThrow(
      RangeError,
    );
  });

  it("cleans up only expired rows", async () => {
    await store.set(["expired"], 1, { ttl: duration({ hours: 1 }) });
    await store.set(["live"], 2, { ttl: duration({ hours: 1 }) });
    await store.set(["forever"], 3);
    await expire(["expired"]);
    expect(await store.cleanUpExpired()).toBe(1);
    const result = await database.pool.query("select key from fedify_kv order by key");
    expect(result.rows.map((row) => row.key)).toEqual([["forever"], ["live"]]);
  });
});

describe("PgKvStore cas", () => {
  it("swaps when the value matches", async () => {
    await store.set(["k"], { state: "open", count: 1 });
    // Key order differs on purpose: jsonb compares values, not text.
    expect(await store.cas(["k"], { count: 1, state: "open" }, { state: "closed" })).toBe(true);
    expect(await store.get(["k"])).toEqual({ state: "closed" });
  });

  it("keeps the value when it does not match", async () => {
    await store.set(["k"], "current");
    expect(await store.cas(["k"], "stale", "new")).toBe(false);
    expect(await store.get(["k"])).toBe("current");
  });

  it("inserts when expecting undefined and the key is absent", async () => {
    expect(await store.cas(["k"], undefined, "created")).toBe(true);
    expect(await store.get(["k"])).toBe("created");
  });

  it("fails when expecting undefined and the key is present", async () => {
    await store.set(["k"], "present");
    expect(await store.cas(["k"], undefined, "created")).toBe(false);
    expect(await store.get(["k"])).toBe("present");
  });

  it("treats an expired key as absent", async () => {
    await store.set(["k"], "old", { ttl: duration({ hours: 1 }) });
    await expire(["k"]);
    expect(await store.cas(["k"], "old", "new")).toBe(false);
    expect(await store.cas(["k"], undefined, "new")).toBe(true);
    expect(await store.get(["k"])).toBe("new");
  });

  it("deletes when the new value is undefined", async () => {
    await store.set(["nonce"], true);
    expect(await store.cas(["nonce"], true, undefined)).toBe(true);
    expect(await store.get(["nonce"])).toBeUndefined();
    expect(await store.cas(["nonce"], true, undefined)).toBe(false);
  });

  it("checks absence when both values are undefined", async () => {
    expect(await store.cas(["k"], undefined, undefined)).toBe(true);
    await store.set(["k"], 1);
    expect(await store.cas(["k"], undefined, undefined)).toBe(false);
  });

  it("sets the TTL of the new value", async () => {
    await store.set(["k"], 1);
    expect(await store.cas(["k"], 1, 2, { ttl: duration({ minutes: 5 }) })).toBe(true);
    const result = await database.pool.query(
      "select expires_at is not null as has_expiry from fedify_kv where key = '{k}'",
    );
    expect(result.rows).toEqual([{ has_expiry: true }]);
  });

  it("lets one of many concurrent updates win", async () => {
    await store.set(["counter"], 0);
    const contenders = 20;
    const results = await Promise.all(
      Array.from({ length: contenders }, (_, index) => store.cas(["counter"], 0, index + 1)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true) + 1;
    expect(await store.get(["counter"])).toBe(winner);
  });

  it("lets one of many concurrent inserts win", async () => {
    const contenders = 20;
    const results = await Promise.all(
      Array.from({ length: contenders }, (_, index) => store.cas(["lock"], undefined, index)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.get(["lock"])).toBe(results.indexOf(true));
  });

  it("lets one of many concurrent deletes win", async () => {
    await store.set(["nonce"], true);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.cas(["nonce"], true, undefined)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it("counts every successful increment under contention", async () => {
    await store.set(["counter"], 0);
    const workers = 8;
    const incrementsPerWorker = 5;
    const increment = async () => {
      for (let done = 0; done < incrementsPerWorker; ) {
        const current = await store.get<number>(["counter"]);
        if (await store.cas(["counter"], current, (current ?? 0) + 1)) done++;
      }
    };
    await Promise.all(Array.from({ length: workers }, increment));
    expect(await store.get(["counter"])).toBe(workers * incrementsPerWorker);
  });
});

describe("PgKvStore list", () => {
  beforeEach(async () => {
    const keys: KvKey[] = [
      ["a"],
      ["a", "x"],
      ["a", "y", "z"],
      ["a", ""],
      ["ab"],
      ["ab", "x"],
      ["a,x"],
      ["A"],
      ["b"],
      ["", "a"],
    ];
    for (const key of keys) await store.set(key, key.join("/"));
  });

  async function listKeys(prefix?: KvKey): Promise<string[]> {
    const entries = await collect(prefix);
    return entries.map((entry) => JSON.stringify(entry.key)).sort();
  }

  it("matches whole key parts only", async () => {
    expect(await listKeys(["a"])).toEqual(
      [["a"], ["a", ""], ["a", "x"], ["a", "y", "z"]].map((key) => JSON.stringify(key)).sort(),
    );
  });

  it("matches a multi-part prefix", async () => {
    expect(await listKeys(["a", "y"])).toEqual([JSON.stringify(["a", "y", "z"])]);
  });

  it("matches an empty first part", async () => {
    expect(await listKeys([""])).toEqual([JSON.stringify(["", "a"])]);
  });

  it("returns nothing for an unknown prefix", async () => {
    expect(await listKeys(["c"])).toEqual([]);
    expect(await listKeys(["a", "x", "more"])).toEqual([]);
  });

  it("lists every entry without a prefix", async () => {
    expect(await listKeys()).toHaveLength(10);
    expect(await listKeys([] as unknown as KvKey)).toHaveLength(10);
  });

  it("returns keys and values", async () => {
    expect(await collect(["ab"])).toEqual([
      { key: ["ab"], value: "ab" },
      { key: ["ab", "x"], value: "ab/x" },
    ]);
  });

  it("skips expired entries across pages", async () => {
    await expire(["a", ""]);
    await expire(["a", "x"]);
    expect(await listKeys(["a"])).toEqual(
      [["a"], ["a", "y", "z"]].map((key) => JSON.stringify(key)).sort(),
    );
  });

  it("allows deletes while iterating", async () => {
    const seen: string[] = [];
    for await (const entry of store.list(["a"])) {
      seen.push(JSON.stringify(entry.key));
      await store.delete(entry.key);
    }
    expect(seen).toHaveLength(4);
    expect(await listKeys(["a"])).toEqual([]);
    expect(await listKeys(["ab"])).toHaveLength(2);
  });
});
