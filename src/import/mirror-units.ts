import { eq } from "drizzle-orm";
import { repos, unitNodes, units } from "../db/schema/index.ts";
import { type MirroredUnit, type MirroredUnitNode, mapUnit, mapUnitNode } from "./mapping.ts";
import { differingFields, type MirrorContext, skipRow } from "./mirror-context.ts";
import { readMirroredUserIds } from "./mirror-repos.ts";
import { placeholderName, planUniqueNames } from "./names.ts";
import type { SourceUnit, SourceUnitNode } from "./source.ts";

type UnitWrite = MirroredUnit & { ownerId: string | null };

const UNIT_FIELDS = ["name", "visibility", "repoId", "ownerId"] as const;
const UNIT_NODE_FIELDS = ["unitId", "type", "topicName", "visibility"] as const;

/** Inserts or updates the node's copy of each changed Pepeunit Unit whose Repo is mirrored. */
export async function mirrorUnits(context: MirrorContext, sourceUnits: SourceUnit[]) {
  const { tx, summary } = context;
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
  const localById = new Map(local.map((row) => [row.id, row]));
  const mirroredRepos = await tx
    .select({ id: repos.id })
    .from(repos)
    .where(eq(repos.source, "pepeunit"));
  const repoIds = new Set(mirroredRepos.map((row) => row.id));
  const ownerIds = await readMirroredUserIds(context);

  const candidates: { unit: UnitWrite; createdAt: Date }[] = [];
  for (const row of sourceUnits) {
    const mapped = mapUnit(row);
    if (!mapped.ok) {
      skipRow(context, {
        entity: "unit",
        sourceId: row.id,
        reason: "invalid-value",
        detail: `${mapped.problem}; fix the row in Pepeunit`,
      });
      continue;
    }
    const existing = localById.get(row.id);
    if (existing && existing.source !== "pepeunit") {
      skipRow(context, {
        entity: "unit",
        sourceId: row.id,
        reason: "id-conflict",
        detail: `node Unit ${existing.id} (${existing.name}) has the same id; delete the node Unit to mirror the Pepeunit one`,
      });
      continue;
    }
    if (!repoIds.has(mapped.value.repoId)) {
      skipRow(context, {
        entity: "unit",
        sourceId: row.id,
        reason: "missing-parent",
        detail: `its Repo ${mapped.value.repoId} is not mirrored; resolve the skip reported for that Repo`,
      });
      continue;
    }
    const ownerId = row.creatorId !== null && ownerIds.has(row.creatorId) ? row.creatorId : null;
    candidates.push({ unit: { ...mapped.value, ownerId }, createdAt: row.createdAt });
  }

  const plan = planUniqueNames(
    local.map((row) => ({ id: row.id, name: row.name, source: row.source })),
    candidates.map(({ unit }) => ({ id: unit.id, name: unit.name })),
  );
  for (const id of plan.renamedIds) {
    await tx
      .update(units)
      .set({ name: placeholderName(id) })
      .where(eq(units.id, id));
  }

  for (const { unit, createdAt } of candidates) {
    const holder = plan.blocked.get(unit.id);
    if (holder) {
      skipRow(context, {
        entity: "unit",
        sourceId: unit.id,
        reason: "name-conflict",
        detail: `name ${JSON.stringify(unit.name)} belongs to ${holder.source} Unit ${holder.id}; rename or delete one of the two Units`,
      });
      continue;
    }

    const existing = localById.get(unit.id);
    if (!existing) {
      await tx.insert(units).values({ ...unit, source: "pepeunit", createdAt });
      summary.counts.unit.inserted += 1;
      context.changedUnitIds.add(unit.id);
      continue;
    }
    const changed = differingFields(existing, unit, UNIT_FIELDS);
    if (changed.length === 0) {
      summary.counts.unit.unchanged += 1;
      continue;
    }
    const { id, ...fields } = unit;
    await tx
      .update(units)
      .set({ ...fields, updatedAt: new Date() })
      .where(eq(units.id, id));
    summary.counts.unit.updated += 1;
    context.changedUnitIds.add(id);
    context.logger.debug("Updated Unit {unitId}: {fields}", { unitId: id, fields: changed });
  }
}

/**
 * Inserts or updates the node's copy of each changed Pepeunit UnitNode whose Unit is mirrored.
 * A UnitNode has no catalogue entry of its own: its change is recorded on its Unit.
 */
export async function mirrorUnitNodes(context: MirrorContext, sourceNodes: SourceUnitNode[]) {
  const { tx, summary } = context;
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
    const node: MirroredUnitNode = mapped.value;
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

    if (!existing) {
      await tx.insert(unitNodes).values({ ...node, createdAt: row.createdAt });
      summary.counts.unitNode.inserted += 1;
      context.changedUnitIds.add(node.unitId);
      continue;
    }
    const changed = differingFields(existing, node, UNIT_NODE_FIELDS);
    if (changed.length === 0) {
      summary.counts.unitNode.unchanged += 1;
      continue;
    }
    const { id, ...fields } = node;
    await tx
      .update(unitNodes)
      .set({ ...fields, updatedAt: new Date() })
      .where(eq(unitNodes.id, id));
    summary.counts.unitNode.updated += 1;
    context.changedUnitIds.add(node.unitId);
    context.changedUnitIds.add(existing.unitId);
  }
}
