import { eq } from "drizzle-orm";
import { repos, unitNodes, units } from "../db/schema/index.ts";
import { type MirroredUnitNode, mapUnit, mapUnitNode } from "./mapping.ts";
import { type MirrorContext, skipRow } from "./mirror-context.ts";
import { readMirroredUserIds, withMirroredOwner } from "./mirror-repos.ts";
import { type MirrorWriter, mirrorNamedRows, writeMirroredRow } from "./mirror-rows.ts";
import type { SourceUnit, SourceUnitNode } from "./source.ts";

const UNIT_FIELDS = ["name", "visibility", "repoId", "ownerId"] as const;
const UNIT_NODE_FIELDS = ["unitId", "type", "topicName", "visibility"] as const;

/** Inserts or updates the node's copy of each changed Pepeunit Unit whose Repo is mirrored. */
export async function mirrorUnits(context: MirrorContext, sourceUnits: SourceUnit[]) {
  const { tx } = context;
  const local = await tx
    .select({
      id: units.id,
      name: units.name,
      source: units.source,
      visibility: units.visibility,
      repoId: units.repoId,
      ownerId: units.ownerId,
    })
    .from(units);
  const mirroredRepos = await tx
    .select({ id: repos.id })
    .from(repos)
    .where(eq(repos.source, "pepeunit"));
  const repoIds = new Set(mirroredRepos.map((row) => row.id));
  const ownerIds = await readMirroredUserIds(context);

  await mirrorNamedRows(
    context,
    {
      entity: "unit",
      label: "Unit",
      local,
      fields: UNIT_FIELDS,
      map: (row: SourceUnit) => withMirroredOwner(mapUnit(row), row.creatorId, ownerIds),
      nameOf: (row) => row.name,
      describeMissingParent: (unit) =>
        repoIds.has(unit.repoId)
          ? undefined
          : `its Repo ${unit.repoId} is not mirrored; resolve the skip reported for that Repo`,
      describeNameConflict: (unit, holder) =>
        `name ${JSON.stringify(unit.name)} belongs to ${holder.source} Unit ${holder.id}; rename or delete one of the two Units`,
      rename: (id, name) => tx.update(units).set({ name }).where(eq(units.id, id)),
      insert: (unit, createdAt) =>
        tx.insert(units).values({ ...unit, source: "pepeunit", createdAt }),
      update: ({ id, ...fields }) =>
        tx
          .update(units)
          .set({ ...fields, updatedAt: new Date() })
          .where(eq(units.id, id)),
      onInserted: (unit) => context.changedUnitIds.add(unit.id),
      onUpdated: (unit, _existing, changed) => {
        context.changedUnitIds.add(unit.id);
        context.logger.debug("Updated Unit {unitId}: {fields}", {
          unitId: unit.id,
          fields: changed,
        });
      },
    },
    sourceUnits,
  );
}

/**
 * Inserts or updates the node's copy of each changed Pepeunit UnitNode whose Unit is mirrored.
 * A UnitNode has no catalogue entry of its own: its change is recorded on its Unit.
 */
export async function mirrorUnitNodes(context: MirrorContext, sourceNodes: SourceUnitNode[]) {
  const { tx } = context;
  const local = await tx
    .select({
      id: unitNodes.id,
      unitId: unitNodes.unitId,
      type: unitNodes.type,
      topicName: unitNodes.topicName,
      visibility: unitNodes.visibility,
      unitSource: units.source,
    })
    .from(unitNodes)
    .innerJoin(units, eq(units.id, unitNodes.unitId));
  const localById = new Map(local.map((row) => [row.id, row]));
  const mirroredUnits = await tx
    .select({ id: units.id })
    .from(units)
    .where(eq(units.source, "pepeunit"));
  const unitIds = new Set(mirroredUnits.map((row) => row.id));

  const writer: MirrorWriter<
    MirroredUnitNode,
    (typeof local)[number],
    (typeof UNIT_NODE_FIELDS)[number]
  > = {
    entity: "unitNode",
    fields: UNIT_NODE_FIELDS,
    insert: (node, createdAt) => tx.insert(unitNodes).values({ ...node, createdAt }),
    update: ({ id, ...fields }) =>
      tx
        .update(unitNodes)
        .set({ ...fields, updatedAt: new Date() })
        .where(eq(unitNodes.id, id)),
    onInserted: (node) => context.changedUnitIds.add(node.unitId),
    // A node moved to another Unit changes both Units.
    onUpdated: (node, existing) => {
      context.changedUnitIds.add(node.unitId);
      context.changedUnitIds.add(existing.unitId);
    },
  };

  for (const row of sourceNodes) {
    const mapped = mapUnitNode(row);
    if (!mapped.ok) {
      skipRow(context, {
        entity: "unitNode",
        sourceId: row.id,
        reason: "invalid-value",
        detail: `${mapped.problem}; fix the row in Pepeunit`,
      });
      continue;
    }
    const node = mapped.value;
    const existing = localById.get(node.id);
    if (existing && existing.unitSource !== "pepeunit") {
      skipRow(context, {
        entity: "unitNode",
        sourceId: node.id,
        reason: "id-conflict",
        detail: `UnitNode ${existing.id} of node Unit ${existing.unitId} has the same id; delete it to mirror the Pepeunit one`,
      });
      continue;
    }
    if (!unitIds.has(node.unitId)) {
      skipRow(context, {
        entity: "unitNode",
        sourceId: node.id,
        reason: "missing-parent",
        detail: `its Unit ${node.unitId} is not mirrored; resolve the skip reported for that Unit`,
      });
      continue;
    }
    await writeMirroredRow(context, writer, node, existing, row.createdAt);
  }
}
