import { describe, expect, it } from "vitest";
import type { Transaction } from "../db/client.ts";
import type { RowSource } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import type { MappingResult } from "./mapping.ts";
import type { MirrorContext } from "./mirror-context.ts";
import { mirrorNamedRows, type NamedEntityMirror } from "./mirror-rows.ts";
import { placeholderName } from "./names.ts";
import { createImportSummary } from "./summary.ts";

interface Source {
  id: string;
  name: string;
  parentId: string;
  createdAt: Date;
}

interface Row {
  id: string;
  name: string;
  parentId: string;
}

interface Local extends Row {
  source: RowSource;
}

const CREATED_AT = new Date("2024-05-01T00:00:00Z");

function createContext(): MirrorContext {
  return {
    // The in-memory writers below never touch the transaction.
    tx: {} as Transaction,
    summary: createImportSummary(CREATED_AT),
    logger: getNodeLogger("import", "pepeunit"),
    changedRepoIds: new Set(),
    changedUnitIds: new Set(),
  };
}

function source(id: string, name: string, parentId = "parent-1"): Source {
  return { id, name, parentId, createdAt: CREATED_AT };
}

/** Builds a named-entity mirror over an in-memory table that records every write in order. */
function memoryMirror(local: Local[]) {
  const writes: string[] = [];
  const updatedFields: string[][] = [];
  const mirror: NamedEntityMirror<Source, Row, Local, "name" | "parentId"> = {
    entity: "unit",
    label: "Unit",
    local,
    fields: ["name", "parentId"],
    map: (row): MappingResult<Row> =>
      row.name === "bad"
        ? { ok: false, problem: "name is bad" }
        : { ok: true, value: { id: row.id, name: row.name, parentId: row.parentId } },
    nameOf: (row) => row.name,
    describeMissingParent: (row) =>
      row.parentId === "parent-1" ? undefined : `parent ${row.parentId} is not mirrored`,
    describeNameConflict: (row, holder) => `name ${row.name} belongs to ${holder.id}`,
    rename: async (id, placeholder) => writes.push(`rename ${id} ${placeholder}`),
    insert: async (row) => writes.push(`insert ${row.id} ${row.name}`),
    update: async (row) => writes.push(`update ${row.id} ${row.name}`),
    onUpdated: (_row, _existing, changed) => updatedFields.push(changed),
  };
  return { mirror, writes, updatedFields };
}

describe("mirrorNamedRows", () => {
  it("inserts, updates and counts unchanged rows", async () => {
    const context = createContext();
    const { mirror, writes, updatedFields } = memoryMirror([
      { id: "a", name: "alpha", parentId: "parent-1", source: "pepeunit" },
      { id: "b", name: "beta", parentId: "parent-1", source: "pepeunit" },
    ]);

    await mirrorNamedRows(context, mirror, [
      source("a", "alpha"),
      source("b", "beta-2"),
      source("c", "gamma"),
    ]);

    expect(writes).toEqual([
      `rename b ${placeholderName("b")}`,
      "update b beta-2",
      "insert c gamma",
    ]);
    expect(updatedFields).toEqual([["name"]]);
    expect(context.summary.counts.unit).toMatchObject({ inserted: 1, updated: 1, unchanged: 1 });
    expect(context.summary.skips).toEqual([]);
  });

  it("skips each kind of conflict with its reason", async () => {
    const context = createContext();
    const { mirror, writes } = memoryMirror([
      { id: "node-row", name: "taken", parentId: "parent-1", source: "node" },
    ]);

    await mirrorNamedRows(context, mirror, [
      source("invalid", "bad"),
      source("node-row", "same-id"),
      source("orphan", "orphan", "parent-2"),
      source("late", "taken"),
    ]);

    expect(writes).toEqual([]);
    expect(context.summary.skips).toEqual([
      {
        entity: "unit",
        sourceId: "invalid",
        reason: "invalid-value",
        detail: "name is bad; fix the row in Pepeunit",
      },
      {
        entity: "unit",
        sourceId: "node-row",
        reason: "id-conflict",
        detail:
          "node Unit node-row (taken) has the same id; delete the node Unit to mirror the Pepeunit one",
      },
      {
        entity: "unit",
        sourceId: "orphan",
        reason: "missing-parent",
        detail: "parent parent-2 is not mirrored",
      },
      {
        entity: "unit",
        sourceId: "late",
        reason: "name-conflict",
        detail: "name taken belongs to node-row",
      },
    ]);
    expect(context.summary.counts.unit.skipped).toBe(4);
  });

  it("lets a row take a name another row gives up", async () => {
    const context = createContext();
    const { mirror, writes } = memoryMirror([
      { id: "a", name: "first", parentId: "parent-1", source: "pepeunit" },
      { id: "b", name: "second", parentId: "parent-1", source: "pepeunit" },
    ]);

    await mirrorNamedRows(context, mirror, [source("a", "second"), source("b", "first")]);

    expect(writes).toEqual([
      `rename a ${placeholderName("a")}`,
      `rename b ${placeholderName("b")}`,
      "update a second",
      "update b first",
    ]);
    expect(context.summary.skips).toEqual([]);
  });
});
