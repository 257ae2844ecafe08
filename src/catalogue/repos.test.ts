import { asc, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { catalogueChanges, repos, unitNodes, units } from "../db/schema/index.ts";
import { createRepo, deleteRepo, getRepo, listRepos, type RepoInput, updateRepo } from "./repos.ts";
import { createUnit } from "./units.ts";
import type { CatalogueResult } from "./validation.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "catalogue-repos");
});

afterAll(async () => {
  await database.drop();
});

function repoInput(name: string, extra: Partial<RepoInput> = {}): RepoInput {
  return {
    name,
    repositoryUrl: `https://github.com/example/${name}.git`,
    platform: "Github",
    ...extra,
  };
}

function unwrap<T>(result: CatalogueResult<T>): T {
  if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result.failure)}`);
  return result.value;
}

async function changesFor(entityId: string) {
  return await database.db
    .select({ kind: catalogueChanges.entityKind })
    .from(catalogueChanges)
    .where(eq(catalogueChanges.entityId, entityId))
    .orderBy(asc(catalogueChanges.id));
}

describe("createRepo", () => {
  it("stores the Repo and records a change", async () => {
    const repo = unwrap(await createRepo(database.db, repoInput("thermo-1", { summary: "ESP32" })));
    expect(repo.visibility).toBe("Public");
    expect(repo.source).toBe("node");
    expect(await getRepo(database.db, repo.id)).toMatchObject({
      name: "thermo-1",
      summary: "ESP32",
    });
    expect(await changesFor(repo.id)).toEqual([{ kind: "repo" }]);
  });

  it.each([
    ["abc", "name"],
    ["a".repeat(21), "name"],
    ["bad name", "name"],
    ["bad/name", "name"],
  ])("rejects the name %j", async (name, field) => {
    const result = await createRepo(database.db, repoInput("valid-name", { name }));
    expect(result).toMatchObject({ ok: false, failure: { kind: "invalid", field } });
  });

  it.each([
    "https://github.com/example/firmware",
    "ftp://github.com/example/firmware.git",
    "not a url.git",
  ])("rejects the repository URL %j", async (repositoryUrl) => {
    const result = await createRepo(database.db, repoInput("url-check", { repositoryUrl }));
    expect(result).toMatchObject({
      ok: false,
      failure: { kind: "invalid", field: "repositoryUrl" },
    });
  });

  it("accepts http and https URLs ending in .git", async () => {
    const plain = await createRepo(
      database.db,
      repoInput("plain-http", {
        repositoryUrl: "http://git.local/group/plain.git",
        platform: "Gitlab",
      }),
    );
    expect(plain.ok).toBe(true);
  });

  it("rejects an invalid version commit", async () => {
    const result = await createRepo(
      database.db,
      repoInput("versioned", { versions: [{ tag: "v1", commit: "XYZ" }] }),
    );
    expect(result).toMatchObject({
      ok: false,
      failure: { kind: "invalid", field: "versions[0].commit" },
    });
  });

  it("returns name_taken for a duplicate name and writes nothing", async () => {
    unwrap(await createRepo(database.db, repoInput("dup-name")));
    const before = await database.db
      .select({ n: sql<number>`count(*)::int` })
      .from(catalogueChanges);
    const result = await createRepo(database.db, repoInput("dup-name"));
    expect(result).toEqual({
      ok: false,
      failure: { kind: "name_taken", entity: "repo", name: "dup-name" },
    });
    const after = await database.db
      .select({ n: sql<number>`count(*)::int` })
      .from(catalogueChanges);
    expect(after).toEqual(before);
  });
});

describe("updateRepo", () => {
  it("returns not_found for an unknown id", async () => {
    const id = "00000000-0000-4000-8000-000000000000";
    const result = await updateRepo(database.db, id, { summary: "x" });
    expect(result).toEqual({ ok: false, failure: { kind: "not_found", entity: "repo", id } });
  });

  it("returns name_taken when renaming onto another Repo", async () => {
    unwrap(await createRepo(database.db, repoInput("taken-a")));
    const other = unwrap(await createRepo(database.db, repoInput("taken-b")));
    const result = await updateRepo(database.db, other.id, { name: "taken-a" });
    expect(result).toMatchObject({ ok: false, failure: { kind: "name_taken", name: "taken-a" } });
    expect((await getRepo(database.db, other.id))?.name).toBe("taken-b");
  });

  it("tightens Units and nodes more open than the new level", async () => {
    const repo = unwrap(await createRepo(database.db, repoInput("cascade-1")));
    const open = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "open-unit",
        nodes: [
          { type: "Output", topicName: "temp/pepeunit" },
          { type: "Input", topicName: "fan", visibility: "Private" },
        ],
      }),
    );
    const closed = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "closed-unit",
        visibility: "Private",
      }),
    );

    const update = unwrap(await updateRepo(database.db, repo.id, { visibility: "Internal" }));

    expect(update.repo.visibility).toBe("Internal");
    expect(update.tightenedUnitIds).toEqual([open.id]);
    const unitRows = await database.db
      .select({ id: units.id, visibility: units.visibility })
      .from(units)
      .where(eq(units.repoId, repo.id));
    expect(Object.fromEntries(unitRows.map((row) => [row.id, row.visibility]))).toEqual({
      [open.id]: "Internal",
      [closed.id]: "Private",
    });
    const nodeRows = await database.db
      .select({ topicName: unitNodes.topicName, visibility: unitNodes.visibility })
      .from(unitNodes)
      .where(eq(unitNodes.unitId, open.id))
      .orderBy(asc(unitNodes.topicName));
    expect(nodeRows).toEqual([
      { topicName: "fan", visibility: "Private" },
      { topicName: "temp/pepeunit", visibility: "Internal" },
    ]);
    expect(await changesFor(repo.id)).toEqual([{ kind: "repo" }, { kind: "repo" }]);
    expect(await changesFor(open.id)).toEqual([{ kind: "unit" }, { kind: "unit" }]);
    expect(await changesFor(closed.id)).toEqual([{ kind: "unit" }]);
  });

  it("leaves Units alone when the Repo opens up", async () => {
    const repo = unwrap(
      await createRepo(database.db, repoInput("opening", { visibility: "Private" })),
    );
    const unit = unwrap(await createUnit(database.db, { repoId: repo.id, name: "stays-private" }));
    const update = unwrap(await updateRepo(database.db, repo.id, { visibility: "Public" }));
    expect(update.tightenedUnitIds).toEqual([]);
    const [row] = await database.db.select().from(units).where(eq(units.id, unit.id));
    expect(row?.visibility).toBe("Private");
  });

  it("rejects changes to Repos mirrored from Pepeunit", async () => {
    const [mirrored] = await database.db
      .insert(repos)
      .values({ ...repoInput("mirrored"), source: "pepeunit" })
      .returning({ id: repos.id });
    if (!mirrored) throw new Error("insert returned no row");
    expect(await updateRepo(database.db, mirrored.id, { summary: "x" })).toMatchObject({
      ok: false,
      failure: { kind: "mirrored" },
    });
    expect(await deleteRepo(database.db, mirrored.id)).toMatchObject({
      ok: false,
      failure: { kind: "mirrored" },
    });
    const allowed = await updateRepo(
      database.db,
      mirrored.id,
      { summary: "x" },
      { allowMirrored: true },
    );
    expect(allowed.ok).toBe(true);
  });
});

describe("deleteRepo", () => {
  it("deletes Units too and records a change for each", async () => {
    const repo = unwrap(await createRepo(database.db, repoInput("doomed")));
    const unit = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "doomed-unit",
        nodes: [{ type: "Output", topicName: "x" }],
      }),
    );
    const deletion = unwrap(await deleteRepo(database.db, repo.id));
    expect(deletion.deletedUnitIds).toEqual([unit.id]);
    expect(await getRepo(database.db, repo.id)).toBeNull();
    expect(await database.db.select().from(unitNodes).where(eq(unitNodes.unitId, unit.id))).toEqual(
      [],
    );
    expect(await changesFor(repo.id)).toEqual([{ kind: "repo" }, { kind: "repo" }]);
    expect(await changesFor(unit.id)).toEqual([{ kind: "unit" }, { kind: "unit" }]);
  });

  it("returns not_found the second time", async () => {
    const repo = unwrap(await createRepo(database.db, repoInput("twice")));
    expect((await deleteRepo(database.db, repo.id)).ok).toBe(true);
    expect(await deleteRepo(database.db, repo.id)).toMatchObject({
      ok: false,
      failure: { kind: "not_found" },
    });
  });
});

describe("listRepos", () => {
  it("pages by name without repeats", async () => {
    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await listRepos(database.db, { limit: 2, after });
      if (page.length === 0) break;
      names.push(...page.map((repo) => repo.name));
      after = page.at(-1)?.name;
    }
    const all = await database.db.select({ name: repos.name }).from(repos).orderBy(asc(repos.name));
    expect(names).toEqual(all.map((row) => row.name));
  });
});
