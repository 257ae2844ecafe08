import { randomUUID } from "node:crypto";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { eq } from "drizzle-orm";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createPepeunitSourceDatabase,
  type PepeunitSourceDatabase,
} from "../../test/fixtures/pepeunit/source-database.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { repos, units } from "../db/schema/index.ts";
import { importFromPepeunit } from "./pepeunit.ts";

const RELAY_REPO = "30000000-0000-4000-8000-000000000002";
const RELAY_UNIT = "40000000-0000-4000-8000-000000000003";
const ROOF_UNIT = "40000000-0000-4000-8000-000000000001";
const PROBE_UNIT = "40000000-0000-4000-8000-000000000005";

let node: TestDatabase;
let source: PepeunitSourceDatabase;
const records: LogRecord[] = [];

beforeAll(async () => {
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["pepeunit-node"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
});

afterAll(async () => {
  await reset();
});

beforeEach(async () => {
  records.length = 0;
  node = await createTestDatabase(inject("postgresAdminUrl"), "import_conflicts");
  source = await createPepeunitSourceDatabase(inject("postgresAdminUrl"));
});

afterEach(async () => {
  await node.drop();
  await source.drop();
});

describe("importFromPepeunit conflicts", () => {
  it("skips a Repo whose name a node Repo has", async () => {
    const [local] = await node.db
      .insert(repos)
      .values({
        name: "relay-switch",
        repositoryUrl: "https://example.org/local/relay.git",
        platform: "Gitlab",
      })
      .returning();

    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.counts.repo).toMatchObject({ inserted: 4, skipped: 1 });
    expect(summary.skips).toContainEqual(
      expect.objectContaining({ entity: "repo", sourceId: RELAY_REPO, reason: "name-conflict" }),
    );
    expect(summary.skips).toContainEqual(
      expect.objectContaining({ entity: "unit", sourceId: RELAY_UNIT, reason: "missing-parent" }),
    );
    expect(summary.counts.unitNode.skipped).toBe(2);
    const [kept] = await node.db.select().from(repos).where(eq(repos.name, "relay-switch"));
    expect(kept).toMatchObject({ id: local?.id, source: "node" });

    const warning = records.find(
      (record) => record.level === "warning" && record.properties.sourceId === RELAY_REPO,
    );
    expect(warning).toBeDefined();
    expect(String(warning?.properties.detail)).toContain(String(local?.id));
    expect(warning?.category).toEqual(["pepeunit-node", "import", "pepeunit"]);
  });

  it("imports a skipped Repo once renamed", async () => {
    const [local] = await node.db
      .insert(repos)
      .values({
        name: "relay-switch",
        repositoryUrl: "https://example.org/r.git",
        platform: "Gitlab",
      })
      .returning();
    await importFromPepeunit(node.db, source.pool);

    await node.db
      .update(repos)
      .set({ name: "relay-local" })
      .where(eq(repos.id, String(local?.id)));
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.skips).toEqual([]);
    expect(summary.counts.repo.inserted).toBe(1);
    expect(summary.counts.unit.inserted).toBe(1);
    expect(summary.counts.unitNode.inserted).toBe(2);
  });

  it("applies swapped Unit names", async () => {
    await importFromPepeunit(node.db, source.pool);

    await source.pool.query(`
      begin;
      update units set name = 'swap-tmp' where uuid = '${ROOF_UNIT}';
      update units set name = 'weather-roof', last_update_datetime = now() at time zone 'UTC'
       where uuid = '${PROBE_UNIT}';
      update units set name = 'probe-lab', last_update_datetime = now() at time zone 'UTC'
       where uuid = '${ROOF_UNIT}';
      commit;`);
    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.skips).toEqual([]);
    expect(summary.counts.unit.updated).toBe(2);
    const [roof] = await node.db.select().from(units).where(eq(units.id, ROOF_UNIT));
    const [probe] = await node.db.select().from(units).where(eq(units.id, PROBE_UNIT));
    expect(roof?.name).toBe("probe-lab");
    expect(probe?.name).toBe("weather-roof");
  });

  it("skips rows with unknown enum values", async () => {
    await source.pool.query(
      `update units set visibility_level = 'Hidden' where uuid = '${ROOF_UNIT}'`,
    );

    const summary = await importFromPepeunit(node.db, source.pool);

    expect(summary.skips).toContainEqual(
      expect.objectContaining({ entity: "unit", sourceId: ROOF_UNIT, reason: "invalid-value" }),
    );
    expect(summary.counts.unit).toMatchObject({ inserted: 4, skipped: 1 });
    expect(summary.counts.unitNode).toMatchObject({ inserted: 8, skipped: 3 });
  });
});

describe("importFromPepeunit source role", () => {
  it("works with SELECT on the read columns only", async () => {
    const role = `pepeunit_reader_${randomUUID().replaceAll("-", "").slice(0, 8)}`;
    const password = randomUUID();
    const quotedRole = pg.escapeIdentifier(role);
    await source.pool.query(`create role ${quotedRole} login password '${password}'`);
    try {
      await source.pool.query(`
        grant connect on database ${pg.escapeIdentifier(source.name)} to ${quotedRole};
        grant usage on schema public to ${quotedRole};
        grant select (uuid, login, role, status, create_datetime) on users to ${quotedRole};
        grant select (uuid, platform, repository_url, releases_data, last_update_datetime,
                      sync_last_datetime) on repository_registry to ${quotedRole};
        grant select (uuid, name, visibility_level, default_branch, default_commit,
                      is_compilable_repo, creator_uuid, repository_registry_uuid,
                      create_datetime, last_update_datetime) on repos to ${quotedRole};
        grant select (uuid, name, visibility_level, repo_uuid, creator_uuid, create_datetime,
                      last_update_datetime) on units to ${quotedRole};
        grant select (uuid, unit_uuid, type, topic_name, visibility_level, create_datetime,
                      last_update_datetime) on units_nodes to ${quotedRole};`);
      const url = new URL(source.url);
      url.username = role;
      url.password = password;
      const readerPool = new pg.Pool({ connectionString: url.href, max: 1 });
      try {
        const denied = await readerPool
          .query("select cipher_env_dict from units")
          .catch((error: unknown) => error);
        expect((denied as { code?: string }).code).toBe("42501");

        const summary = await importFromPepeunit(node.db, readerPool);

        expect(summary.skips).toEqual([]);
        expect(summary.counts.repo.inserted).toBe(5);
        expect(summary.counts.unitNode.inserted).toBe(11);
      } finally {
        await readerPool.end();
      }
    } finally {
      // DROP OWNED also revokes the role's grants on the database, so the role can be dropped.
      await source.pool.query(`drop owned by ${quotedRole}`);
      await source.pool.query(`drop role ${quotedRole}`);
    }
  });
});
