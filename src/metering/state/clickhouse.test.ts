/**
 * Storage figures against a real ClickHouse server started for this file
 * (`/usr/sbin/clickhouse-server`, 18.16 on the project machines) and the test PostgreSQL.
 */
import { type ClickHouseClient, createClient } from "@clickhouse/client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  createTestClickHouseDatabase,
  hasClickHouseBinary,
  startTestClickHouse,
  type TestClickHouseServer,
} from "../../../test/clickhouse.ts";
import { findFreePort } from "../../../test/global-setup.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { repos, unitNodes, units, users } from "../../db/schema/index.ts";
import { measureAggregationSpace } from "./aggregation-space.ts";
import { readClickHouseSpace } from "./databases.ts";

const available = await hasClickHouseBinary();

/**
 * DataPipe's tables as Pepeunit's ClickHouse migrations create them, adapted to 18.16:
 * `DateTime64(3)` is missing there, so those columns are `DateTime`, and `TTL` clauses, which
 * 18.16 cannot parse, are left out. The `Enum8` values are Pepeunit's.
 */
const DATAPIPE_DDL = [
  `CREATE TABLE n_last_entry (
     unit_node_uuid UUID, state String, state_type Enum8('Number' = 1, 'Text' = 2),
     create_datetime DateTime, max_count UInt32, size UInt32
   ) ENGINE = MergeTree() PRIMARY KEY (unit_node_uuid, create_datetime)
     ORDER BY (unit_node_uuid, create_datetime) SETTINGS index_granularity = 128`,
  `CREATE TABLE window_entry (
     unit_node_uuid UUID, state String, state_type Enum8('Number' = 1, 'Text' = 2),
     create_datetime DateTime, expiration_datetime DateTime, size UInt32
   ) ENGINE = MergeTree() PRIMARY KEY (unit_node_uuid, create_datetime)
     ORDER BY (unit_node_uuid, create_datetime) SETTINGS index_granularity = 128`,
  `CREATE TABLE aggregation_entry (
     unit_node_uuid UUID, state Float64,
     aggregation_type Enum8('Avg' = 1, 'Min' = 2, 'Max' = 3, 'Sum' = 4),
     time_window_size UInt32, create_datetime DateTime,
     start_window_datetime DateTime, end_window_datetime DateTime
   ) ENGINE = MergeTree() PRIMARY KEY (unit_node_uuid, start_window_datetime)
     ORDER BY (unit_node_uuid, start_window_datetime) SETTINGS index_granularity = 128`,
];

const ALICE = "a1111111-1111-4111-8111-111111111111";
const BOB = "b2222222-2222-4222-8222-222222222222";
const NODE_ALICE_TEXT = "c3333333-3333-4333-8333-333333333333";
const NODE_ALICE_AGG = "d4444444-4444-4444-8444-444444444444";
const NODE_BOB = "e5555555-5555-4555-8555-555555555555";
const NODE_UNKNOWN = "f6666666-6666-4666-8666-666666666666";

describe.skipIf(!available)(
  "ClickHouse storage figures (needs /usr/sbin/clickhouse-server from the Debian package clickhouse-server)",
  () => {
    let server: TestClickHouseServer;
    let database: TestDatabase;
    let client: ClickHouseClient;
    let dropClickHouse: () => Promise<void>;

    beforeAll(async () => {
      server = await startTestClickHouse(await findFreePort(), await findFreePort());
      const chDatabase = await createTestClickHouseDatabase(server.url, "aggregation_space");
      dropClickHouse = chDatabase.drop;
      client = createClient({ url: chDatabase.url });
      for (const ddl of DATAPIPE_DDL) await client.command({ query: ddl });

      database = await createTestDatabase(inject("postgresAdminUrl"), "aggregation-space");
      await database.db.insert(users).values([
        { id: ALICE, login: "alice" },
        { id: BOB, login: "bob" },
      ]);
      const [repo] = await database.db
        .insert(repos)
        .values({ name: "sensors", repositoryUrl: "https://example.com/s.git", platform: "Github" })
        .returning();
      const [aliceUnit, bobUnit] = await database.db
        .insert(units)
        .values([
          { repoId: repo?.id as string, ownerId: ALICE, name: "alice-unit" },
          { repoId: repo?.id as string, ownerId: BOB, name: "bob-unit" },
        ])
        .returning();
      await database.db.insert(unitNodes).values([
        {
          id: NODE_ALICE_TEXT,
          unitId: aliceUnit?.id as string,
          type: "Output",
          topicName: "t/pepeunit",
        },
        {
          id: NODE_ALICE_AGG,
          unitId: aliceUnit?.id as string,
          type: "Output",
          topicName: "a/pepeunit",
        },
        { id: NODE_BOB, unitId: bobUnit?.id as string, type: "Output", topicName: "b/pepeunit" },
      ]);

      const at = "2026-12-04 10:00:00";
      await client.insert({
        table: "n_last_entry",
        format: "JSONEachRow",
        values: [
          ...Array.from({ length: 30 }, (_, index) => ({
            unit_node_uuid: NODE_ALICE_TEXT,
            state: "a long text value ".repeat(20) + index,
            state_type: "Text",
            create_datetime: at,
            max_count: 100,
            size: 360,
          })),
          ...Array.from({ length: 10 }, (_, index) => ({
            unit_node_uuid: NODE_BOB,
            state: String(index),
            state_type: "Number",
            create_datetime: at,
            max_count: 10,
            size: 1,
          })),
        ],
      });
      await client.insert({
        table: "aggregation_entry",
        format: "JSONEachRow",
        values: [
          ...Array.from({ length: 96 }, (_, index) => ({
            unit_node_uuid: NODE_ALICE_AGG,
            state: index * 1.5,
            aggregation_type: "Avg",
            time_window_size: 900,
            create_datetime: at,
            start_window_datetime: at,
            end_window_datetime: at,
          })),
          {
            unit_node_uuid: NODE_UNKNOWN,
            state: 1,
            aggregation_type: "Sum",
            time_window_size: 60,
            create_datetime: at,
            start_window_datetime: at,
            end_window_datetime: at,
          },
        ],
      });
    });

    afterAll(async () => {
      await client?.close();
      await dropClickHouse?.();
      await server?.stop();
      await database?.drop();
    });

    it("reports parts bytes and disk space", async () => {
      const values = await readClickHouseSpace(client, new AbortController().signal);
      expect(values.clickhouse_database_bytes).toBeGreaterThan(0);
      expect(values.clickhouse_server_bytes).toBeGreaterThanOrEqual(
        values.clickhouse_database_bytes ?? 0,
      );
      const [disks] = await (
        await client.query({
          query:
            "SELECT count() AS present FROM system.tables WHERE database = 'system' AND name = 'disks'",
          format: "JSONEachRow",
        })
      ).json<{ present: number | string }>();
      if (Number(disks?.present) > 0) {
        expect(values.clickhouse_disk_free_bytes).toBeGreaterThan(0);
        expect(values.clickhouse_disk_total_bytes).toBeGreaterThan(
          values.clickhouse_disk_free_bytes ?? 0,
        );
      } else {
        // 18.16 has no system.disks: the values are left out, not guessed.
        expect(values.clickhouse_disk_free_bytes).toBeUndefined();
        expect(values.clickhouse_disk_total_bytes).toBeUndefined();
      }
    });

    it("splits aggregation space by UnitNode and user", async () => {
      const snapshot = await measureAggregationSpace(
        database.db,
        client,
        new AbortController().signal,
      );
      expect(snapshot.missingTables).toEqual([]);

      const entry = (node: string, table: string) =>
        snapshot.unitNodes.find((row) => row.unitNodeId === node && row.table === table);
      expect(entry(NODE_ALICE_TEXT, "n_last_entry")?.rows).toBe(30);
      expect(entry(NODE_BOB, "n_last_entry")?.rows).toBe(10);
      expect(entry(NODE_ALICE_AGG, "aggregation_entry")?.rows).toBe(96);
      expect(entry(NODE_UNKNOWN, "aggregation_entry")?.userId).toBeNull();

      // Long text values take the larger share of n_last_entry's bytes.
      const aliceText = entry(NODE_ALICE_TEXT, "n_last_entry")?.bytes ?? 0;
      const bobText = entry(NODE_BOB, "n_last_entry")?.bytes ?? 0;
      expect(aliceText).toBeGreaterThan(bobText * 3);

      // The shares of a table add up to its bytes on disk, give or take rounding.
      const [parts] = await (
        await client.query({
          query:
            "SELECT sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = currentDatabase() AND table = 'n_last_entry'",
          format: "JSONEachRow",
        })
      ).json<{ bytes: string | number }>();
      expect(Math.abs(aliceText + bobText - Number(parts?.bytes))).toBeLessThanOrEqual(1);

      const user = (id: string | null) => snapshot.users.find((row) => row.userId === id);
      expect(user(ALICE)?.rows).toBe(126);
      expect(user(BOB)?.rows).toBe(10);
      expect(user(null)?.rows).toBe(1);
      expect(user(ALICE)?.bytes).toBe(
        aliceText + (entry(NODE_ALICE_AGG, "aggregation_entry")?.bytes ?? 0),
      );
    });

    it("lists missing DataPipe tables", async () => {
      const empty = await createTestClickHouseDatabase(server.url, "no_datapipe");
      const emptyClient = createClient({ url: empty.url });
      try {
        const snapshot = await measureAggregationSpace(
          database.db,
          emptyClient,
          new AbortController().signal,
        );
        expect(snapshot.missingTables).toEqual([
          "n_last_entry",
          "window_entry",
          "aggregation_entry",
        ]);
        expect(snapshot.unitNodes).toEqual([]);
      } finally {
        await emptyClient.close();
        await empty.drop();
      }
    });
  },
);
