import { inject } from "vitest";
import { createTestDatabase } from "../../../test/postgres.ts";
import { registerStoreSuite } from "../store-suite.ts";
import { PostgresTimeSeriesStore } from "./store.ts";

registerStoreSuite("PostgreSQL", async () => {
  const database = await createTestDatabase(inject("postgresAdminUrl"), "timeseries");
  const store = new PostgresTimeSeriesStore(database.db);
  await store.migrate();
  return {
    store,
    cleanup: async () => {
      await store.close();
      await database.drop();
    },
  };
});
