/**
 * A PostgreSQL session-level advisory lock held on one pooled connection, for work that only
 * one process of a deployment may do at a time.
 */
import type pg from "pg";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("db", "lock");

export class AdvisoryLockHolder {
  readonly #pool: pg.Pool;
  readonly #key: number;
  #client: pg.PoolClient | undefined;

  constructor(pool: pg.Pool, key: number) {
    this.#pool = pool;
    this.#key = key;
  }

  /**
   * Returns whether this process holds the lock, taking it when it is free. A connection that
   * failed drops the lock, and the next call tries again.
   */
  async hold(): Promise<boolean> {
    if (this.#client) return true;
    const client = await this.#pool.connect();
    try {
      const result = await client.query<{ locked: boolean }>(
        "select pg_try_advisory_lock($1::bigint) as locked",
        [this.#key],
      );
      if (!result.rows[0]?.locked) {
        client.release();
        return false;
      }
    } catch (error) {
      client.release(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    client.on("error", (error) => {
      // A broken connection may emit more than one error; release it once.
      if (this.#client !== client) return;
      this.#client = undefined;
      logger.warning("Lost advisory lock {key}: {error}", { key: this.#key, error });
      client.release(error);
    });
    this.#client = client;
    logger.info("Took advisory lock {key}; this process now runs the job it guards", {
      key: this.#key,
    });
    return true;
  }

  /** Unlocks and returns the connection to the pool. */
  async release(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    try {
      await client.query("select pg_advisory_unlock($1::bigint)", [this.#key]);
      client.release();
    } catch (error) {
      client.release(error instanceof Error ? error : new Error(String(error)));
    }
  }
}
