import { describe, inject } from "vitest";
import { createTestClickHouseDatabase } from "../../../test/clickhouse.ts";
import { registerStoreSuite } from "../store-suite.ts";
import { ClickHouseTimeSeriesStore } from "./store.ts";

const serverUrl = inject("clickhouseUrl");

if (serverUrl) {
  registerStoreSuite("ClickHouse", async () => {
    const database = await createTestClickHouseDatabase(serverUrl, "timeseries");
    const store = new ClickHouseTimeSeriesStore(new URL(database.url));
    await store.migrate();
    return {
      store,
      cleanup: async () => {
        await store.close();
        await database.drop();
      },
    };
  });
} else {
  describe.skip("ClickHouse time-series store: SKIPPED because /usr/sbin/clickhouse-server is not installed and PU_NODE_TEST_CLICKHOUSE_URL is unset", () => {});
}
