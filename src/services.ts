import type pg from "pg";
import type { Config } from "./config.ts";
import type { Database } from "./db/client.ts";
import type { FederationPort } from "./federation-port.ts";
import type { ErrorCounter } from "./metering/errors/counter.ts";
import type { PolicyEngine } from "./policy/types.ts";
import type { TimeSeriesStore } from "./timeseries/store.ts";

/** Everything a request handler or job needs, built once at start by `src/server.ts`. */
export interface NodeServices {
  readonly config: Config;
  readonly pool: pg.Pool;
  readonly db: Database;
  readonly federation: FederationPort;
  /** The admin token in force (configured, or generated under the data directory). */
  readonly adminToken: string;
  /** Metering time series (PostgreSQL or ClickHouse). */
  readonly timeSeries: TimeSeriesStore;
  /** Counts error records of the node and of the backend's ingest, per fingerprint and minute. */
  readonly errorCounter: ErrorCounter;
  /** Federation policy decisions from the domain rules, reloaded when the rules change. */
  readonly policy: PolicyEngine;
}
