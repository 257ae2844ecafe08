/**
 * Local Units and their UnitNodes: create, update and delete with Pepeunit's rules. A Unit is
 * never more open than its Repo and a UnitNode never more open than its Unit.
 */
import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  repos,
  UNIT_NODE_TYPES,
  type Unit,
  type UnitNode,
  type UnitNodeType,
  unitNodes,
  units,
  VISIBILITY_LEVELS,
  type Visibility,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { recordCatalogueChange } from "./changes.ts";
import type { WriteOptions } from "./repos.ts";
import {
  type CatalogueFailure,
  type CatalogueResult,
  CatalogueRollback,
  checkName,
  checkTopicName,
  fail,
  firstFailure,
  isUniqueViolation,
  isWithin,
  levelsMoreOpenThan,
  succeed,
  visibilityRank,
} from "./validation.ts";

const logger = getNodeLogger("catalogue", "units");

/** Upper bound on the nodes of one Unit; Pepeunit has none, this keeps a request bounded. */
export const MAX_UNIT_NODES = 200;

export interface UnitNodeInput {
  type: UnitNodeType;
  topicName: string;
  /** Defaults to the Unit's visibility. */
  visibility?: Visibility;
}

export interface UnitInput {
  repoId: string;
  name: string;
  /** Defaults to the Repo's visibility. */
  visibility?: Visibility;
  nodes?: UnitNodeInput[];
}

export interface UnitChanges {
  name?: string;
  visibility?: Visibility;
  /**
   * The complete node list, when given. Nodes that keep their type and topic name keep their id
   * (the id is part of the MQTT topic); the others are deleted or created.
   */
  nodes?: UnitNodeInput[];
}

export type UnitWithNodes = Unit & { nodes: UnitNode[] };

function levelFailure(field: string, level: string): CatalogueFailure | null {
  return VISIBILITY_LEVELS.includes(level as Visibility)
    ? null
    : { kind: "invalid", field, message: `expected one of ${VISIBILITY_LEVELS.join(", ")}` };
}

/** Checks names, topic names, types and duplicates; visibility against parents is checked later. */
export function checkUnitFields(input: UnitChanges): CatalogueFailure | null {
  const nodes = input.nodes ?? [];
  if (nodes.length > MAX_UNIT_NODES) {
    return { kind: "invalid", field: "nodes", message: `expected at most ${MAX_UNIT_NODES} nodes` };
  }
  const seen = new Set<string>();
  for (const [index, node] of nodes.entries()) {
    const failure = firstFailure(
      UNIT_NODE_TYPES.includes(node.type)
        ? null
        : {
            kind: "invalid",
            field: `nodes[${index}].type`,
            message: `expected one of ${UNIT_NODE_TYPES.join(", ")}`,
          },
      checkTopicName(`nodes[${index}].topicName`, node.topicName),
      node.visibility === undefined
        ? null
        : levelFailure(`nodes[${index}].visibility`, node.visibility),
    );
    if (failure) return failure;
    const key = nodeKey(node);
    if (seen.has(key)) {
      return {
        kind: "invalid",
        field: `nodes[${index}].topicName`,
        message: `duplicate ${node.type} node ${node.topicName}; each type and topic name may appear once`,
      };
    }
    seen.add(key);
  }
  return firstFailure(
    input.name === undefined ? null : checkName("name", input.name),
    input.visibility === undefined ? null : levelFailure("visibility", input.visibility),
  );
}

function nodeKey(node: { type: string; topicName: string }): string {
  return `${node.type}\u0000${node.topicName}`;
}

function nameTaken(name: string): CatalogueFailure {
  return { kind: "name_taken", entity: "unit", name };
}

/** Returns the first node more open than the Unit, as a failure. */
function checkNodesWithin(nodes: UnitNodeInput[], unitLevel: Visibility): CatalogueFailure | null {
  for (const [index, node] of nodes.entries()) {
    if (node.visibility !== undefined && !isWithin(node.visibility, unitLevel)) {
      return {
        kind: "visibility_too_open",
        field: `nodes[${index}].visibility`,
        message: `a node cannot be more open than its Unit (${unitLevel}); use ${unitLevel} or stricter`,
      };
    }
  }
  return null;
}

/** Locks the Repo against visibility changes until the transaction ends and returns its level. */
async function lockRepoLevel(db: DatabaseLike, repoId: string): Promise<Visibility | null> {
  const [repo] = await db
    .select({ visibility: repos.visibility })
    .from(repos)
    .where(eq(repos.id, repoId))
    .for("share");
  return repo?.visibility ?? null;
}

async function loadNodes(db: DatabaseLike, unitIds: string[]): Promise<Map<string, UnitNode[]>> {
  const byUnit = new Map<string, UnitNode[]>(unitIds.map((id) => [id, []]));
  if (unitIds.length === 0) return byUnit;
  const rows = await db
    .select()
    .from(unitNodes)
    .where(inArray(unitNodes.unitId, unitIds))
    .orderBy(asc(unitNodes.type), asc(unitNodes.topicName), asc(unitNodes.id));
  for (const row of rows) byUnit.get(row.unitId)?.push(row);
  return byUnit;
}

/** Returns the Unit with `id` and its nodes, or null. */
export async function getUnit(db: DatabaseLike, id: string): Promise<UnitWithNodes | null> {
  const [unit] = await db.select().from(units).where(eq(units.id, id));
  if (!unit) return null;
  const nodes = await loadNodes(db, [unit.id]);
  return { ...unit, nodes: nodes.get(unit.id) ?? [] };
}

/** Lists local Units with their nodes by name, optionally of one Repo, after the name `after`. */
export async function listUnits(
  db: DatabaseLike,
  page: { limit: number; after?: string | undefined; repoId?: string | undefined },
): Promise<UnitWithNodes[]> {
  const rows = await db
    .select()
    .from(units)
    .where(
      and(
        page.repoId === undefined ? undefined : eq(units.repoId, page.repoId),
        page.after === undefined ? undefined : gt(units.name, page.after),
      ),
    )
    .orderBy(asc(units.name))
    .limit(page.limit);
  const nodes = await loadNodes(
    db,
    rows.map((row) => row.id),
  );
  return rows.map((row) => ({ ...row, nodes: nodes.get(row.id) ?? [] }));
}

/**
 * Creates a Unit of a local Repo with its nodes and records the change. The Unit's visibility
 * defaults to the Repo's, and each node's to the Unit's.
 */
export async function createUnit(
  db: DatabaseLike,
  input: UnitInput,
): Promise<CatalogueResult<UnitWithNodes>> {
  const failure = checkUnitFields(input);
  if (failure) return fail(failure);

  try {
    const created = await db.transaction(async (tx) => {
      const repoLevel = await lockRepoLevel(tx, input.repoId);
      if (repoLevel === null) {
        throw new CatalogueRollback({ kind: "not_found", entity: "repo", id: input.repoId });
      }
      const level = input.visibility ?? repoLevel;
      if (!isWithin(level, repoLevel)) {
        throw new CatalogueRollback({
          kind: "visibility_too_open",
          field: "visibility",
          message: `a Unit cannot be more open than its Repo (${repoLevel}); use ${repoLevel} or stricter`,
        });
      }
      const nodes = input.nodes ?? [];
      const nodeFailure = checkNodesWithin(nodes, level);
      if (nodeFailure) throw new CatalogueRollback(nodeFailure);

      const [unit] = await tx
        .insert(units)
        .values({ repoId: input.repoId, name: input.name, visibility: level, source: "node" })
        .returning();
      if (!unit) throw new Error("INSERT ... RETURNING returned no Unit row");
      if (nodes.length > 0) {
        await tx.insert(unitNodes).values(
          nodes.map((node) => ({
            unitId: unit.id,
            type: node.type,
            topicName: node.topicName,
            visibility: node.visibility ?? level,
          })),
        );
      }
      await recordCatalogueChange(tx, "unit", unit.id);
      const loaded = await loadNodes(tx, [unit.id]);
      return { ...unit, nodes: loaded.get(unit.id) ?? [] };
    });
    logger.info("Created Unit {unitId} ({name}) of Repo {repoId} with {nodeCount} nodes", {
      unitId: created.id,
      name: created.name,
      repoId: created.repoId,
      nodeCount: created.nodes.length,
    });
    return succeed(created);
  } catch (error) {
    if (error instanceof CatalogueRollback) return fail(error.failure);
    if (isUniqueViolation(error, "units_name_unique")) return fail(nameTaken(input.name));
    throw error;
  }
}

/**
 * Updates a Unit and records the change. Tightening its visibility tightens its nodes; a
 * visibility more open than the Repo's, or a node more open than the Unit, is a failure.
 */
export async function updateUnit(
  db: DatabaseLike,
  id: string,
  changes: UnitChanges,
  options: WriteOptions = {},
): Promise<CatalogueResult<UnitWithNodes>> {
  const failure = checkUnitFields(changes);
  if (failure) return fail(failure);

  try {
    const updated = await db.transaction(async (tx) => {
      // Lock the Repo before the Unit, in the same order as updateRepo, so the two cannot
      // deadlock. No service here changes a Unit's repo_id, so the unlocked read is safe.
      const [located] = await tx
        .select({ repoId: units.repoId })
        .from(units)
        .where(eq(units.id, id));
      if (!located) throw new CatalogueRollback({ kind: "not_found", entity: "unit", id });
      const repoLevel = await lockRepoLevel(tx, located.repoId);

      const [current] = await tx.select().from(units).where(eq(units.id, id)).for("update");
      if (!current || repoLevel === null) {
        throw new CatalogueRollback({ kind: "not_found", entity: "unit", id });
      }
      if (current.source === "pepeunit" && !options.allowMirrored) {
        throw new CatalogueRollback({ kind: "mirrored", entity: "unit", id });
      }

      const level = changes.visibility ?? current.visibility;
      if (!isWithin(level, repoLevel)) {
        throw new CatalogueRollback({
          kind: "visibility_too_open",
          field: "visibility",
          message: `a Unit cannot be more open than its Repo (${repoLevel}); use ${repoLevel} or stricter`,
        });
      }

      const [unit] = await tx
        .update(units)
        .set({ name: changes.name, visibility: level, updatedAt: sql`now()` })
        .where(eq(units.id, id))
        .returning();
      if (!unit) throw new Error(`UPDATE ... RETURNING returned no row for Unit ${id}`);

      if (changes.nodes !== undefined) {
        const nodeFailure = checkNodesWithin(changes.nodes, level);
        if (nodeFailure) throw new CatalogueRollback(nodeFailure);
        await replaceNodes(tx, id, changes.nodes, level);
      } else if (visibilityRank(level) > visibilityRank(current.visibility)) {
        await tx
          .update(unitNodes)
          .set({ visibility: level, updatedAt: sql`now()` })
          .where(
            and(eq(unitNodes.unitId, id), inArray(unitNodes.visibility, levelsMoreOpenThan(level))),
          );
      }

      await recordCatalogueChange(tx, "unit", id);
      const loaded = await loadNodes(tx, [id]);
      return { ...unit, nodes: loaded.get(id) ?? [] };
    });
    logger.info("Updated Unit {unitId}", { unitId: id });
    return succeed(updated);
  } catch (error) {
    if (error instanceof CatalogueRollback) return fail(error.failure);
    if (changes.name !== undefined && isUniqueViolation(error, "units_name_unique")) {
      return fail(nameTaken(changes.name));
    }
    throw error;
  }
}

/** Makes the Unit's nodes equal `target`, keeping the ids of nodes with the same type and topic. */
async function replaceNodes(
  db: DatabaseLike,
  unitId: string,
  target: UnitNodeInput[],
  unitLevel: Visibility,
): Promise<void> {
  const existing = await db.select().from(unitNodes).where(eq(unitNodes.unitId, unitId));
  const existingByKey = new Map(existing.map((node) => [nodeKey(node), node]));
  const targetKeys = new Set(target.map(nodeKey));

  const removedIds = existing
    .filter((node) => !targetKeys.has(nodeKey(node)))
    .map((node) => node.id);
  if (removedIds.length > 0) await db.delete(unitNodes).where(inArray(unitNodes.id, removedIds));

  const added = [];
  for (const node of target) {
    const visibility = node.visibility ?? unitLevel;
    const match = existingByKey.get(nodeKey(node));
    if (!match) {
      added.push({ unitId, type: node.type, topicName: node.topicName, visibility });
    } else if (match.visibility !== visibility) {
      await db
        .update(unitNodes)
        .set({ visibility, updatedAt: sql`now()` })
        .where(eq(unitNodes.id, match.id));
    }
  }
  if (added.length > 0) await db.insert(unitNodes).values(added);
}

/** Deletes a Unit with its nodes and records the change. */
export async function deleteUnit(
  db: DatabaseLike,
  id: string,
  options: WriteOptions = {},
): Promise<CatalogueResult<{ id: string; repoId: string }>> {
  try {
    const deleted = await db.transaction(async (tx) => {
      const [current] = await tx
        .select({ id: units.id, repoId: units.repoId, source: units.source })
        .from(units)
        .where(eq(units.id, id))
        .for("update");
      if (!current) throw new CatalogueRollback({ kind: "not_found", entity: "unit", id });
      if (current.source === "pepeunit" && !options.allowMirrored) {
        throw new CatalogueRollback({ kind: "mirrored", entity: "unit", id });
      }
      await tx.delete(units).where(eq(units.id, id));
      await recordCatalogueChange(tx, "unit", id);
      return { id, repoId: current.repoId };
    });
    logger.info("Deleted Unit {unitId} of Repo {repoId}", { unitId: id, repoId: deleted.repoId });
    return succeed(deleted);
  } catch (error) {
    if (error instanceof CatalogueRollback) return fail(error.failure);
    throw error;
  }
}
