/**
 * Fedify key-value store on the node's `pg` pool, in the `fedify_kv` table.
 *
 * Keys are stored as `text[]`, so prefix matching works on whole key parts. Values are stored as
 * `jsonb`, so compare-and-swap compares JSON values (key order in objects does not matter, and
 * `1` equals `1.0`). Expiry uses the database clock, so every process agrees on it.
 */
import type { KvKey, KvStore, KvStoreListEntry, KvStoreSetOptions } from "@fedify/fedify";
import type pg from "pg";
import { getNodeLogger } from "../src/logging.ts";

const logger = getNodeLogger("federation", "kv");

export interface PgKvStoreOptions {
  /** Number of entries that `list()` reads per query; 100 when unset. */
  listPageSize?: number;
}

/**
 * A Fedify {@link KvStore} backed by PostgreSQL.
 *
 * Values must be JSON-serialisable: they go through `JSON.stringify`, so a `Date` comes back as a
 * string and `undefined` object fields disappear. Setting a key to `undefined` deletes it, because
 * `get` returns `undefined` for absent keys and Fedify's `cas(key, value, undefined)` expects a
 * delete. A string containing `\u0000` cannot be stored because `jsonb` rejects it.
 */
export class PgKvStore implements KvStore {
  readonly #pool: pg.Pool;
  readonly #listPageSize: number;

  constructor(pool: pg.Pool, options: PgKvStoreOptions = {}) {
    const listPageSize = options.listPageSize ?? 100;
    if (!Number.isInteger(listPageSize) || listPageSize < 1) {
      throw new RangeError(`listPageSize must be a positive integer, got ${listPageSize}`);
    }
    this.#pool = pool;
    this.#listPageSize = listPageSize;
  }

  async get<T = unknown>(key: KvKey): Promise<T | undefined> {
    const result = await this.#pool.query<{ value: T }>(
      `select value from fedify_kv
        where key = $1::text[] and (expires_at is null or expires_at > now())`,
      [checkKey(key)],
    );
    return result.rows[0]?.value;
  }

  async set(key: KvKey, value: unknown, options?: KvStoreSetOptions): Promise<void> {
    if (value === undefined) {
      await this.delete(key);
      return;
    }
    await this.#pool.query(
      `insert into fedify_kv (key, value, expires_at)
       values ($1::text[], $2::jsonb, now() + $3::double precision * interval '1 millisecond')
       on conflict (key) do update set value = excluded.value, expires_at = excluded.expires_at`,
      [checkKey(key), serialize(value), ttlMilliseconds(options)],
    );
  }

  async delete(key: KvKey): Promise<void> {
    await this.#pool.query("delete from fedify_kv where key = $1::text[]", [checkKey(key)]);
  }

  /**
   * Replaces the value of `key` with `newValue` only if its current value equals `expectedValue`,
   * as one atomic statement. An absent or expired key has the value `undefined`, so
   * `expectedValue === undefined` succeeds only when the key is absent, and
   * `newValue === undefined` deletes the key. Returns whether the swap happened.
   */
  async cas(
    key: KvKey,
    expectedValue: unknown,
    newValue: unknown,
    options?: KvStoreSetOptions,
  ): Promise<boolean> {
    const keyParts = checkKey(key);
    const ttl = ttlMilliseconds(options);
    let result: pg.QueryResult;

    if (expectedValue === undefined && newValue === undefined) {
      // Nothing to write: the swap succeeds exactly when the key is absent right now.
      const present = await this.#pool.query(
        `select 1 from fedify_kv
          where key = $1::text[] and (expires_at is null or expires_at > now())`,
        [keyParts],
      );
      return present.rowCount === 0;
    } else if (expectedValue === undefined) {
      // Insert, or replace a row that has expired. On a conflict PostgreSQL re-checks the
      // `where` against the newest row version, so of many concurrent callers exactly one wins.
      result = await this.#pool.query(
        `insert into fedify_kv (key, value, expires_at)
         values ($1::text[], $2::jsonb, now() + $3::double precision * interval '1 millisecond')
         on conflict (key) do update set value = excluded.value, expires_at = excluded.expires_at
           where fedify_kv.expires_at <= now()`,
        [keyParts, serialize(newValue), ttl],
      );
    } else if (newValue === undefined) {
      result = await this.#pool.query(
        `delete from fedify_kv
          where key = $1::text[] and value = $2::jsonb
            and (expires_at is null or expires_at > now())`,
        [keyParts, serialize(expectedValue)],
      );
    } else {
      // An update re-checks its `where` after waiting for a concurrent writer's row lock, so a
      // caller that lost the race compares against the new value and matches nothing.
      result = await this.#pool.query(
        `update fedify_kv
            set value = $3::jsonb,
                expires_at = now() + $4::double precision * interval '1 millisecond'
          where key = $1::text[] and value = $2::jsonb
            and (expires_at is null or expires_at > now())`,
        [keyParts, serialize(expectedValue), serialize(newValue), ttl],
      );
    }
    return result.rowCount === 1;
  }

  /**
   * Yields the live entries whose key starts with all parts of `prefix` (every entry when
   * `prefix` is unset or empty), in key order. Entries are read in pages, so the caller may
   * change the store while iterating; an entry written behind the current page is not yielded.
   */
  async *list(prefix?: KvKey): AsyncIterable<KvStoreListEntry> {
    const prefixParts = prefix === undefined || prefix.length === 0 ? [] : checkKey(prefix);
    // The first page starts at the prefix itself, later pages after the last key yielded.
    let after: string[] | null = null;

    while (true) {
      // Array comparison is part by part, so the keys that start with the prefix form one
      // contiguous run in key order that begins at the prefix itself. The scan starts there
      // and stops at the first key outside the run, instead of filtering the rest of the table.
      const startOperator = after === null ? ">=" : ">";
      const result: pg.QueryResult<{ key: string[]; value: unknown; matches: boolean }> =
        await this.#pool.query(
          `select key, value, key[1:cardinality($1::text[])] = $1::text[] as matches
             from fedify_kv
            where key ${startOperator} $2::text[] and (expires_at is null or expires_at > now())
            order by key
            limit $3`,
          [prefixParts, after ?? prefixParts, this.#listPageSize],
        );

      for (const row of result.rows) {
        if (prefixParts.length > 0 && !row.matches) return;
        yield { key: row.key as unknown as KvKey, value: row.value };
      }
      const last = result.rows.at(-1);
      if (last === undefined || result.rows.length < this.#listPageSize) return;
      after = last.key;
    }
  }

  /** Deletes expired entries and returns how many were deleted. */
  async cleanUpExpired(): Promise<number> {
    const result = await this.#pool.query("delete from fedify_kv where expires_at <= now()");
    const deleted = result.rowCount ?? 0;
    logger.debug("Deleted {deleted} expired key-value entries", { deleted });
    return deleted;
  }
}

/** Returns the key as a mutable array for `pg`, after checking that it is a non-empty string array. */
function checkKey(key: KvKey): string[] {
  if (!Array.isArray(key) || key.length === 0) {
    throw new TypeError("Invalid key-value store key: expected a non-empty array of strings");
  }
  for (const part of key) {
    if (typeof part !== "string") {
      throw new TypeError(
        `Invalid key-value store key part: expected a string, got ${typeof part}`,
      );
    }
  }
  return [...key];
}

function serialize(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new TypeError(`Invalid key-value store value: ${typeof value} is not JSON-serialisable`);
  }
  return json;
}

/** Returns the TTL in milliseconds, or null for no expiry; a negative TTL is rejected. */
function ttlMilliseconds(options: KvStoreSetOptions | undefined): number | null {
  if (options?.ttl === undefined) return null;
  // `total` throws a RangeError for years, months or weeks, because their length depends on a
  // start date; Fedify's own TTLs use days and smaller units.
  const milliseconds = options.ttl.total({ unit: "millisecond" });
  if (milliseconds < 0) {
    throw new RangeError(`Invalid TTL ${options.ttl.toString()}: it must not be negative`);
  }
  return milliseconds;
}
