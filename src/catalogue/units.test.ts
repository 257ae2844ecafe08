import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { catalogueChanges, type Visibility } from "../db/schema/index.ts";
import { createRepo } from "./repos.ts";
import { createUnit, deleteUnit, getUnit, listUnits, updateUnit } from "./units.ts";
import type { CatalogueResult } from "./validation.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "catalogue-units");
});

afterAll(async () => {
  await database.drop();
});

function unwrap<T>(result: CatalogueResult<T>): T {
  if (!result.ok) throw new Error(`expected success, got ${JSON.stringify(result.failure)}`);
  return result.value;
}

async function makeRepo(name: string, visibility: Visibility = "Public") {
  return unwrap(
    await createRepo(database.db, {
      name,
      repositoryUrl: `https://gitlab.com/example/${name}.git`,
      platform: "Gitlab",
      visibility,
    }),
  );
}

async function unitChangeCount(unitId: string): Promise<number> {
  const rows = await database.db
    .select()
    .from(catalogueChanges)
    .where(eq(catalogueChanges.entityId, unitId));
  return rows.length;
}

describe("createUnit", () => {
  it("stores nodes with defaults from the Repo and Unit", async () => {
    const repo = await makeRepo("repo-int", "Internal");
    const unit = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "unit-int",
        nodes: [
          { type: "Output", topicName: "temp/pepeunit" },
          { type: "Input", topicName: "set_fan-state", visibility: "Private" },
        ],
      }),
    );
    expect(unit.visibility).toBe("Internal");
    expect(unit.nodes.map((node) => [node.type, node.topicName, node.visibility])).toEqual([
      ["Input", "set_fan-state", "Private"],
      ["Output", "temp/pepeunit", "Internal"],
    ]);
    expect(await unitChangeCount(unit.id)).toBe(1);
  });

  it("rejects a Unit more open than its Repo", async () => {
    const repo = await makeRepo("repo-priv", "Private");
    const result = await createUnit(database.db, {
      repoId: repo.id,
      name: "too-open",
      visibility: "Public",
    });
    expect(result).toMatchObject({
      ok: false,
      failure: { kind: "visibility_too_open", field: "visibility" },
    });
    expect(await listUnits(database.db, { limit: 10, repoId: repo.id })).toEqual([]);
  });

  it("rejects a node more open than its Unit", async () => {
    const repo = await makeRepo("repo-nodes");
    const result = await createUnit(database.db, {
      repoId: repo.id,
      name: "node-open",
      visibility: "Internal",
      nodes: [
        { type: "Output", topicName: "a" },
        { type: "Output", topicName: "b", visibility: "Public" },
      ],
    });
    expect(result).toMatchObject({
      ok: false,
      failure: { kind: "visibility_too_open", field: "nodes[1].visibility" },
    });
  });

  it.each([
    ["temp.value", "nodes[0].topicName", 1],
    ["temp value", "nodes[0].topicName", 2],
    ["", "nodes[0].topicName", 3],
  ])("rejects the topic name %j", async (topicName, field, caseNumber) => {
    const repo = await makeRepo(`topic-case-${caseNumber}`);
    const result = await createUnit(database.db, {
      repoId: repo.id,
      name: "topic-check",
      nodes: [{ type: "Input", topicName }],
    });
    expect(result).toMatchObject({ ok: false, failure: { kind: "invalid", field } });
  });

  it("rejects duplicate nodes of one type and topic", async () => {
    const repo = await makeRepo("repo-dup-nodes");
    const result = await createUnit(database.db, {
      repoId: repo.id,
      name: "dup-nodes",
      nodes: [
        { type: "Input", topicName: "x" },
        { type: "Output", topicName: "x" },
        { type: "Input", topicName: "x" },
      ],
    });
    expect(result).toMatchObject({
      ok: false,
      failure: { kind: "invalid", field: "nodes[2].topicName" },
    });
  });

  it("returns not_found for an unknown Repo", async () => {
    const repoId = "00000000-0000-4000-8000-000000000001";
    const result = await createUnit(database.db, { repoId, name: "orphan" });
    expect(result).toEqual({
      ok: false,
      failure: { kind: "not_found", entity: "repo", id: repoId },
    });
  });

  it("returns name_taken for a duplicate name", async () => {
    const repo = await makeRepo("repo-dup-unit");
    unwrap(await createUnit(database.db, { repoId: repo.id, name: "same-unit" }));
    const result = await createUnit(database.db, { repoId: repo.id, name: "same-unit" });
    expect(result).toEqual({
      ok: false,
      failure: { kind: "name_taken", entity: "unit", name: "same-unit" },
    });
  });
});

describe("updateUnit", () => {
  it("keeps node ids of unchanged nodes when replacing the list", async () => {
    const repo = await makeRepo("repo-replace");
    const unit = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "replace-me",
        nodes: [
          { type: "Output", topicName: "keep" },
          { type: "Output", topicName: "drop" },
        ],
      }),
    );
    const keptNode = unit.nodes.find((node) => node.topicName === "keep");

    const updated = unwrap(
      await updateUnit(database.db, unit.id, {
        nodes: [
          { type: "Output", topicName: "keep", visibility: "Internal" },
          { type: "Input", topicName: "added" },
        ],
      }),
    );

    expect(updated.nodes.map((node) => [node.type, node.topicName, node.visibility])).toEqual([
      ["Input", "added", "Public"],
      ["Output", "keep", "Internal"],
    ]);
    expect(updated.nodes.find((node) => node.topicName === "keep")?.id).toBe(keptNode?.id);
    expect(await unitChangeCount(unit.id)).toBe(2);
  });

  it("tightens nodes when the Unit tightens", async () => {
    const repo = await makeRepo("repo-tighten");
    const unit = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "tighten-me",
        nodes: [
          { type: "Output", topicName: "a" },
          { type: "Output", topicName: "b", visibility: "Private" },
        ],
      }),
    );
    const updated = unwrap(await updateUnit(database.db, unit.id, { visibility: "Internal" }));
    expect(updated.visibility).toBe("Internal");
    expect(updated.nodes.map((node) => node.visibility)).toEqual(["Internal", "Private"]);
  });

  it("rejects opening a Unit beyond its Repo", async () => {
    const repo = await makeRepo("repo-limit", "Internal");
    const unit = unwrap(await createUnit(database.db, { repoId: repo.id, name: "limited" }));
    const result = await updateUnit(database.db, unit.id, { visibility: "Public" });
    expect(result).toMatchObject({ ok: false, failure: { kind: "visibility_too_open" } });
    expect((await getUnit(database.db, unit.id))?.visibility).toBe("Internal");
    expect(await unitChangeCount(unit.id)).toBe(1);
  });

  it("rejects a renamed Unit whose name is taken", async () => {
    const repo = await makeRepo("repo-rename");
    unwrap(await createUnit(database.db, { repoId: repo.id, name: "first-name" }));
    const second = unwrap(await createUnit(database.db, { repoId: repo.id, name: "second-name" }));
    const result = await updateUnit(database.db, second.id, { name: "first-name" });
    expect(result).toMatchObject({ ok: false, failure: { kind: "name_taken" } });
  });

  it("returns not_found for an unknown Unit", async () => {
    const id = "00000000-0000-4000-8000-000000000002";
    expect(await updateUnit(database.db, id, { name: "whatever" })).toEqual({
      ok: false,
      failure: { kind: "not_found", entity: "unit", id },
    });
  });
});

describe("deleteUnit", () => {
  it("deletes the Unit and records a change", async () => {
    const repo = await makeRepo("repo-del-unit");
    const unit = unwrap(
      await createUnit(database.db, {
        repoId: repo.id,
        name: "delete-me",
        nodes: [{ type: "Input", topicName: "x" }],
      }),
    );
    expect(await deleteUnit(database.db, unit.id)).toEqual({
      ok: true,
      value: { id: unit.id, repoId: repo.id },
    });
    expect(await getUnit(database.db, unit.id)).toBeNull();
    expect(await unitChangeCount(unit.id)).toBe(2);
    expect((await deleteUnit(database.db, unit.id)).ok).toBe(false);
  });
});

describe("listUnits", () => {
  it("filters by Repo and pages by name", async () => {
    const repo = await makeRepo("repo-list");
    for (const name of ["list-c", "list-a", "list-b"]) {
      unwrap(await createUnit(database.db, { repoId: repo.id, name }));
    }
    const first = await listUnits(database.db, { limit: 2, repoId: repo.id });
    const second = await listUnits(database.db, {
      limit: 2,
      repoId: repo.id,
      after: first.at(-1)?.name,
    });
    expect(first.map((unit) => unit.name)).toEqual(["list-a", "list-b"]);
    expect(second.map((unit) => unit.name)).toEqual(["list-c"]);
  });

  it("returns nodes sorted by type and topic", async () => {
    const rows = await listUnits(database.db, { limit: 100 });
    for (const unit of rows) {
      const sorted = [...unit.nodes].sort(
        (a, b) => a.type.localeCompare(b.type) || (a.topicName < b.topicName ? -1 : 1),
      );
      expect(unit.nodes).toEqual(sorted);
    }
  });
});
