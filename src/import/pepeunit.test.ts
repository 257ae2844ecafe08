import { eq } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import {
  countSearchableNodeColumns,
  findValueInNodeDatabase,
  readCatalogueChangeKeys,
  readNodeState,
} from "../../test/fixtures/pepeunit/node-state.ts";
import {
  createPepeunitSourceDatabase,
  type PepeunitSourceDatabase,
} from "../../test/fixtures/pepeunit/source-database.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { catalogueChanges, repos, unitNodes, units, users } from "../db/schema/index.ts";
import { importFromPepeunit } from "./pepeunit.ts";
import { withSourceSnapshot } from "./source.ts";

const ALICE = "10000000-0000-4000-8000-000000000002";
const ADMIN = "10000000-0000-4000-8000-000000000001";
const WEATHER_REPO = "30000000-0000-4000-8000-000000000001";
const RELAY_REPO = "30000000-0000-4000-8000-000000000002";
const GREENHOUSE_REPO = "30000000-0000-4000-8000-000000000003";
const WEATHER_DEV_REPO = "30000000-0000-4000-8000-000000000004";
const PROBE_REPO = "30000000-0000-4000-8000-000000000005";
const ROOF_UNIT = "40000000-0000-4000-8000-000000000001";
const PROBE_UNIT = "40000000-0000-4000-8000-000000000005";

let node: TestDatabase;
let source: PepeunitSourceDatabase;

beforeEach(async () => {
  node = await createTestDatabase(inject("postgresAdminUrl"), "import");
  source = await createPepeunitSourceDatabase(inject("postgresAdminUrl"));
});

afterEach(async () => {
  await node.drop();
  await source.drop();
});

describe("importFromPepeunit first run", () => {
  it("mirrors users with their UUIDs", async () => {
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.user).toMatchObject({ inserted: 4, skipped: 0 });
    const rows = await node.db.select().from(users);
    const byLogin = Object.fromEntries(rows.map((row) => [row.login, row]));
    expect(byLogin.pepe_admin).toMatchObject({ id: ADMIN, role: "Admin", status: "Verified" });
    expect(byLogin.alice).toMatchObject({ id: ALICE, role: "User", status: "Verified" });
    expect(byLogin["bob.iot"]).toMatchObject({ role: "User", status: "Unverified" });
    expect(byLogin.mallory).toMatchObject({ role: "User", status: "Blocked" });
    expect(rows.every((row) => row.source === "pepeunit")).toBe(true);
    expect(byLogin.alice?.createdAt.toISOString()).toBe("2025-06-03T17:40:02.551Z");
  });

  it("mirrors Repos with registry fields", async () => {
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.repo).toMatchObject({ inserted: 5, skipped: 0 });
    const rows = await node.db.select().from(repos);
    const byId = Object.fromEntries(rows.map((row) => [row.id, row]));
    expect(byId[WEATHER_REPO]).toMatchObject({
      name: "weather-esp32",
      repositoryUrl: "https://github.com/example-iot/esp32-weather-station.git",
      platform: "Github",
      defaultBranch: "main",
      isCompilable: true,
      visibility: "Public",
      registryId: "20000000-0000-4000-8000-000000000001",
      ownerId: ALICE,
      source: "pepeunit",
      summary: "",
    });
    expect(byId[WEATHER_REPO]?.versions).toEqual([
      { tag: "v1.1.0", commit: null },
      { tag: "v1.0.0", commit: null },
    ]);
    expect(byId[RELAY_REPO]).toMatchObject({
      platform: "Gitlab",
      isCompilable: false,
      visibility: "Internal",
      defaultBranch: "master",
      versions: [{ tag: null, commit: "a3f9c2d41b7e5f60718293a4b5c6d7e8f9012345" }],
    });
    expect(byId[GREENHOUSE_REPO]).toMatchObject({ visibility: "Private", isCompilable: true });
    expect(byId[WEATHER_DEV_REPO]?.versions).toEqual([
      { tag: "v1.1.0", commit: null },
      { tag: "v1.0.0", commit: null },
      { tag: null, commit: "0be1f4c7d2a3968e5b1c0d9e8f7a6b5c4d3e2f10" },
    ]);
    expect(byId[PROBE_REPO]?.versions).toEqual([{ tag: "2.0.1", commit: null }]);
  });

  it("mirrors Units and UnitNodes", async () => {
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.unit).toMatchObject({ inserted: 5, skipped: 0 });
    expect(summary.counts.unitNode).toMatchObject({ inserted: 11, skipped: 0 });
    const unitRows = await node.db.select().from(units);
    expect(unitRows.map((row) => [row.name, row.visibility, row.repoId]).sort()).toEqual([
      ["greenhouse-1", "Private", GREENHOUSE_REPO],
      ["probe-lab", "Public", PROBE_REPO],
      ["relay-hall", "Internal", RELAY_REPO],
      ["weather-garage", "Internal", WEATHER_REPO],
      ["weather-roof", "Public", WEATHER_REPO],
    ]);
    const roofNodes = await node.db
      .select({
        type: unitNodes.type,
        topic: unitNodes.topicName,
        visibility: unitNodes.visibility,
      })
      .from(unitNodes)
      .where(eq(unitNodes.unitId, ROOF_UNIT));
    expect(roofNodes.sort((a, b) => a.topic.localeCompare(b.topic))).toEqual([
      { type: "Output", topic: "humidity/pepeunit", visibility: "Public" },
      { type: "Input", topic: "set_interval", visibility: "Public" },
      { type: "Output", topic: "temperature/pepeunit", visibility: "Public" },
    ]);
  });

  it("records one catalogue change per Repo and Unit", async () => {
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.catalogueChanges).toBe(10);
    const keys = await readCatalogueChangeKeys(node.db);
    expect(keys).toHaveLength(10);
    expect(keys.filter((key) => key.startsWith("repo:"))).toHaveLength(5);
    expect(keys).toContain(`unit:${ROOF_UNIT}`);
  });

  it("copies no secret value", async () => {
    await importFromPepeunit(node.db, source.pool);

    const secrets = await source.pool.query<{ value: string }>(`
      select value from (
        select hashed_password as value from users
        union all select cipher_dynamic_salt from users
        union all select telegram_chat_id from users
        union all select grafana_org_name::text from users
        union all select cipher_credentials_private_repository from repository_registry
        union all select cipher_env_dict from units
        union all select cipher_state_storage from units
        union all select unit_state_dict from units
        union all select data_pipe_yml from units_nodes
      ) secrets where value is not null`);
    expect(secrets.rows.length).toBeGreaterThanOrEqual(20);
    expect(await countSearchableNodeColumns(node.db)).toBeGreaterThan(10);

    for (const { value } of secrets.rows) {
      expect({ value, columns: await findValueInNodeDatabase(node.db, value) }).toEqual({
        value,
        columns: [],
      });
    }
  });

  it("reads the source in a read-only transaction", async () => {
    const failure = await withSourceSnapshot(source.pool, (client) =>
      client.query("update users set status = 'Blocked'"),
    ).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(Error);
    expect((failure as { code?: string }).code).toBe("25006");
  });
});

describe("importFromPepeunit later runs", () => {
  it("writes nothing when the source is unchanged", async () => {
    await importFromPepeunit(node.db, source.pool);
    const before = await readNodeState(node.db);

    const summary = await importFromPepeunit(node.db, source.pool);

    for (const counts of Object.values(summary.counts)) {
      expect(counts).toMatchObject({ inserted: 0, updated: 0, deleted: 0, skipped: 0 });
    }
    expect(summary.catalogueChanges).toBe(0);
    expect(await readNodeState(node.db)).toEqual(before);
  });

  it("reads only rows newer than the cursors", async () => {
    await importFromPepeunit(node.db, source.pool);

    const summary = await importFromPepeunit(node.db, source.pool, { overlapSeconds: 0 });

    // Users have no update timestamp in Pepeunit and are compared in full.
    expect(summary.counts.user.unchanged).toBe(4);
    expect(summary.counts.repo.unchanged).toBe(0);
    expect(summary.counts.unitNode.unchanged).toBe(0);
    // greenhouse-1 is stamped 06:59:59.999999; the cursor keeps milliseconds, so it is reread.
    expect(summary.counts.unit.unchanged).toBe(1);
  });

  it("mirrors updates, visibility, new and deleted rows", async () => {
    await importFromPepeunit(node.db, source.pool);
    await node.db.delete(catalogueChanges);

    await source.pool.query(`
      begin;
      update repos set default_branch = 'release', last_update_datetime = now() at time zone 'UTC'
       where uuid = '${WEATHER_DEV_REPO}';
      update units set visibility_level = 'Internal', last_update_datetime = now() at time zone 'UTC'
       where uuid = '${ROOF_UNIT}';
      update units_nodes set visibility_level = 'Internal',
             last_update_datetime = now() at time zone 'UTC'
       where unit_uuid = '${ROOF_UNIT}';
      insert into units (uuid, visibility_level, name, create_datetime,
                         is_auto_update_from_repo_unit, last_update_datetime, cipher_env_dict,
                         creator_uuid, repo_uuid)
      values ('40000000-0000-4000-8000-000000000006', 'Public', 'weather-shed',
              now() at time zone 'UTC', true, now() at time zone 'UTC', 'bm9uY2U.Y2lwaGVy',
              '${ALICE}', '${WEATHER_REPO}');
      insert into units_nodes (uuid, type, visibility_level, is_rewritable_input, topic_name,
                               create_datetime, creator_uuid, unit_uuid, last_update_datetime)
      values ('50000000-0000-4000-8000-000000000012', 'Output', 'Public', false,
              'temperature/pepeunit', now() at time zone 'UTC', '${ALICE}',
              '40000000-0000-4000-8000-000000000006', now() at time zone 'UTC');
      delete from repos where uuid = '${PROBE_REPO}';
      commit;`);

    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.repo).toMatchObject({ inserted: 0, updated: 1, deleted: 1 });
    expect(summary.counts.unit).toMatchObject({ inserted: 1, updated: 1, deleted: 1 });
    expect(summary.counts.unitNode).toMatchObject({ inserted: 1, updated: 3, deleted: 2 });
    const [devRepo] = await node.db.select().from(repos).where(eq(repos.id, WEATHER_DEV_REPO));
    expect(devRepo?.defaultBranch).toBe("release");
    const [roof] = await node.db.select().from(units).where(eq(units.id, ROOF_UNIT));
    expect(roof?.visibility).toBe("Internal");
    const roofNodes = await node.db.select().from(unitNodes).where(eq(unitNodes.unitId, ROOF_UNIT));
    expect(roofNodes.map((row) => row.visibility)).toEqual(["Internal", "Internal", "Internal"]);
    expect(await node.db.select().from(repos).where(eq(repos.id, PROBE_REPO))).toEqual([]);
    expect(await node.db.select().from(units).where(eq(units.id, PROBE_UNIT))).toEqual([]);
    expect(await readCatalogueChangeKeys(node.db)).toEqual(
      [
        `repo:${PROBE_REPO}`,
        `repo:${WEATHER_DEV_REPO}`,
        `unit:${ROOF_UNIT}`,
        `unit:${PROBE_UNIT}`,
        "unit:40000000-0000-4000-8000-000000000006",
      ].sort(),
    );
  });

  it("follows new release tags of a registry", async () => {
    await importFromPepeunit(node.db, source.pool);
    await node.db.delete(catalogueChanges);

    await source.pool.query(`
      update repository_registry
         set releases_data = '{"v1.2.0": [["esp32-generic.bin", "https://example.invalid/a.bin"]], "v1.1.0": [], "v1.0.0": []}',
             sync_last_datetime = now() at time zone 'UTC'
       where uuid = '20000000-0000-4000-8000-000000000001'`);

    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.repo.updated).toBe(2);
    const [weather] = await node.db.select().from(repos).where(eq(repos.id, WEATHER_REPO));
    expect(weather?.versions.map((version) => version.tag)).toEqual(["v1.2.0", "v1.1.0", "v1.0.0"]);
    expect(await readCatalogueChangeKeys(node.db)).toEqual(
      [`repo:${WEATHER_REPO}`, `repo:${WEATHER_DEV_REPO}`].sort(),
    );
  });

  it("imports a late row stamped before the cursor", async () => {
    await importFromPepeunit(node.db, source.pool);

    // A row whose transaction committed after the last run but carries an old timestamp.
    await source.pool.query(`
      insert into units (uuid, visibility_level, name, create_datetime,
                         is_auto_update_from_repo_unit, last_update_datetime, creator_uuid,
                         repo_uuid)
      values ('40000000-0000-4000-8000-000000000007', 'Public', 'late-unit',
              '2020-01-01 00:00:00', true, '2020-01-01 00:00:00', '${ALICE}', '${WEATHER_REPO}')`);

    const summary = await importFromPepeunit(node.db, source.pool, { overlapSeconds: 0 });

    expect(summary.counts.unit.inserted).toBe(1);
    const [late] = await node.db
      .select()
      .from(units)
      .where(eq(units.id, "40000000-0000-4000-8000-000000000007"));
    expect(late?.name).toBe("late-unit");
  });

  it("mirrors a user blocked in place", async () => {
    await importFromPepeunit(node.db, source.pool);

    await source.pool.query(`update users set status = 'Blocked' where uuid = '${ALICE}'`);
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.user.updated).toBe(1);
    const [alice] = await node.db.select().from(users).where(eq(users.id, ALICE));
    expect(alice?.status).toBe("Blocked");
  });
});
