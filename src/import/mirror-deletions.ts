import { and, eq, inArray } from "drizzle-orm";
import { repos, unitNodes, units, users } from "../db/schema/index.ts";
import { chunked, type MirrorContext } from "./mirror-context.ts";

/** Ids of every row in the Pepeunit tables, from the full scans of this run. */
export interface SourceIdSets {
  users: Set<string>;
  repos: Set<string>;
  units: Set<string>;
  unitNodes: Set<string>;
}

/**
 * Deletes mirrored rows whose source row is gone, children first so that every deleted
 * UnitNode, Unit and Repo is counted and recorded as a catalogue change. Rows created on the
 * node are never deleted here, except node-created Units of a deleted mirrored Repo, which the
 * foreign key removes with it (they are logged and recorded).
 */
export async function deleteVanishedRows(context: MirrorContext, sourceIds: SourceIdSets) {
  const { tx, summary, logger } = context;

  const localNodes = await tx
    .select({ id: unitNodes.id, unitId: unitNodes.unitId })
    .from(unitNodes)
    .innerJoin(units, eq(units.id, unitNodes.unitId))
    .where(eq(units.source, "pepeunit"));
  const vanishedNodes = localNodes.filter((row) => !sourceIds.unitNodes.has(row.id));
  for (const chunk of chunked(vanishedNodes.map((row) => row.id))) {
    await tx.delete(unitNodes).where(inArray(unitNodes.id, chunk));
  }
  for (const row of vanishedNodes) context.changedUnitIds.add(row.unitId);
  summary.counts.unitNode.deleted += vanishedNodes.length;

  const localUnits = await tx
    .select({ id: units.id })
    .from(units)
    .where(eq(units.source, "pepeunit"));
  const vanishedUnitIds = localUnits.map((row) => row.id).filter((id) => !sourceIds.units.has(id));
  for (const chunk of chunked(vanishedUnitIds)) {
    await tx.delete(units).where(inArray(units.id, chunk));
  }
  for (const id of vanishedUnitIds) context.changedUnitIds.add(id);
  summary.counts.unit.deleted += vanishedUnitIds.length;

  const localRepos = await tx
    .select({ id: repos.id })
    .from(repos)
    .where(eq(repos.source, "pepeunit"));
  const vanishedRepoIds = localRepos.map((row) => row.id).filter((id) => !sourceIds.repos.has(id));
  for (const chunk of chunked(vanishedRepoIds)) {
    const nodeUnits = await tx
      .select({ id: units.id, repoId: units.repoId })
      .from(units)
      .where(and(inArray(units.repoId, chunk), eq(units.source, "node")));
    for (const unit of nodeUnits) {
      logger.warn(
        "Deleting Pepeunit Repo {repoId} also deletes node Unit {unitId}, which was built from it",
        { repoId: unit.repoId, unitId: unit.id },
      );
      context.changedUnitIds.add(unit.id);
    }
    await tx.delete(repos).where(inArray(repos.id, chunk));
  }
  for (const id of vanishedRepoIds) context.changedRepoIds.add(id);
  summary.counts.repo.deleted += vanishedRepoIds.length;

  const localUsers = await tx
    .select({ id: users.id })
    .from(users)
    .where(eq(users.source, "pepeunit"));
  const vanishedUserIds = localUsers.map((row) => row.id).filter((id) => !sourceIds.users.has(id));
  for (const chunk of chunked(vanishedUserIds)) {
    await tx.delete(users).where(inArray(users.id, chunk));
  }
  summary.counts.user.deleted += vanishedUserIds.length;
}
