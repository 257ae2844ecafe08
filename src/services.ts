import type pg from "pg";
import type { Config } from "./config.ts";
import type { Database } from "./db/client.ts";
import type { FederationPort } from "./federation-port.ts";

/** Everything a request handler or job needs, built once at start by `src/server.ts`. */
export interface NodeServices {
  readonly config: Config;
  readonly pool: pg.Pool;
  readonly db: Database;
  readonly federation: FederationPort;
  /** The admin token in force (configured, or generated under the data directory). */
  readonly adminToken: string;
}
