import type pg from "pg";
import type { Config } from "../config.ts";
import { createDatabase } from "../db/client.ts";
import { getNodeLogger } from "../logging.ts";
import { ClickHouseTimeSeriesStore } from "./clickhouse/store.ts";
import { PostgresTimeSeriesStore } from "./postgres/store.ts";
import type { TimeSeriesStore } from "./store.ts";

const logger = getNodeLogger("timeseries");

/**
 * Returns the ClickHouse store when `PU_NODE_CLICKHOUSE_URL` is set, otherwise the PostgreSQL
 * store on `pool`. The caller runs `migrate()` before use and `close()` at shutdown; closing
 * the PostgreSQL store leaves `pool` open.
 */
export function createTimeSeriesStore(
  config: Pick<Config, "clickhouseUrl">,
  pool: pg.Pool,
): TimeSeriesStore {
  if (config.clickhouseUrl) {
    const redactedUrl = new URL(config.clickhouseUrl.href);
    if (redactedUrl.password) redactedUrl.password = "hidden";
    logger.info("Time series go to ClickHouse at {url}", { url: redactedUrl.href });
    return new ClickHouseTimeSeriesStore(config.clickhouseUrl);
  }
  logger.info("Time series go to PostgreSQL");
  return new PostgresTimeSeriesStore(createDatabase(pool));
}
