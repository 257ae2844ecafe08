/**
 * One `pg` pool and one Drizzle handle serve the whole node: the catalogue, federation state and
 * the Fedify key-value store and queue.
 */
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import { getNodeLogger } from "../logging.ts";
import * as schema from "./schema/index.ts";

const logger = getNodeLogger("db");

export type Database = NodePgDatabase<typeof schema>;
export type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];
/** Either the database or an open transaction; domain helpers take this as their first argument. */
export type DatabaseLike = Database | Transaction;

export interface PoolOptions {
  url: string;
  max: number;
  applicationName?: string;
}

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    application_name: options.applicationName ?? "pepeunit-node",
  });
  // An idle client can lose its connection (server restart); pg emits the error on the pool and
  // would crash the process if nobody listened.
  pool.on("error", (error) => {
    // pool.end() resolves before the sockets close; errors from connections it is closing
    // (for example when the embedded server stops right after) mean nothing.
    if (pool.ending) return;
    // 57P01 (admin_shutdown): the server is stopping, for example after Ctrl+C reached it too.
    if ((error as { code?: string }).code === "57P01") {
      logger.info("PostgreSQL closed an idle connection because the server is shutting down");
      return;
    }
    logger.error("Idle PostgreSQL connection failed: {error}", { error });
  });
  return pool;
}

export function createDatabase(pool: pg.Pool): Database {
  return drizzle({ client: pool, schema });
}

/** Returns the URL with its password replaced, for logs and error messages. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "hidden";
    return parsed.href;
  } catch {
    return "<unparseable database URL>";
  }
}
