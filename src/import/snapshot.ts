/** One consistent read of everything an import run needs from the Pepeunit database. */
import { eq } from "drizzle-orm";
import type pg from "pg";
import type { DatabaseLike } from "../db/client.ts";
import { repos, unitNodes, units } from "../db/schema/index.ts";
import { type ImportCursors, readFrom } from "./cursors.ts";
import type { SourceIdSets } from "./mirror-deletions.ts";
import {
  readChangedRepos,
  readChangedUnitNodes,
  readChangedUnits,
  readHighWaterMarks,
  readSourceIds,
  readSourceUsers,
  type SourceRepo,
  type SourceUnit,
  type SourceUnitNode,
  type SourceUser,
} from "./source.ts";

export interface PepeunitSnapshot {
  users: SourceUser[];
  repos: SourceRepo[];
  units: SourceUnit[];
  unitNodes: SourceUnitNode[];
  ids: SourceIdSets;
  /** The cursors to store once this snapshot is mirrored. */
  seen: ImportCursors;
}

/** Ids of the rows the node already mirrors, to find source rows it lacks. */
export interface MirroredIdSets {
  repos: Set<string>;
  units: Set<string>;
  unitNodes: Set<string>;
}

export async function readMirroredIds(db: DatabaseLike): Promise<MirroredIdSets> {
  const repoRows = await db
    .select({ id: repos.id })
    .from(repos)
    .where(eq(repos.source, "pepeunit"));
  const unitRows = await db
    .select({ id: units.id })
    .from(units)
    .where(eq(units.source, "pepeunit"));
  const nodeRows = await db
    .select({ id: unitNodes.id })
    .from(unitNodes)
    .innerJoin(units, eq(units.id, unitNodes.unitId))
    .where(eq(units.source, "pepeunit"));
  return {
    repos: new Set(repoRows.map((row) => row.id)),
    units: new Set(unitRows.map((row) => row.id)),
    unitNodes: new Set(nodeRows.map((row) => row.id)),
  };
}

function missingIds(sourceIds: Set<string>, mirrored: Set<string>): string[] {
  return [...sourceIds].filter((id) => !mirrored.has(id));
}

/**
 * Reads the snapshot inside the caller's read-only source transaction. Rows are read when their
 * timestamp is newer than the cursor minus `overlapMs`, or when the node lacks them. The second
 * rule catches rows whose transaction committed after a later-stamped one. It also rereads rows
 * skipped in an earlier run, so they are checked again on every run.
 */
export async function readPepeunitSnapshot(
  client: pg.PoolClient,
  cursors: ImportCursors,
  mirrored: MirroredIdSets,
  overlapMs: number,
): Promise<PepeunitSnapshot> {
  const users = await readSourceUsers(client);
  const ids: SourceIdSets = {
    users: new Set(users.map((user) => user.id)),
    repos: await readSourceIds(client, "repos"),
    units: await readSourceIds(client, "units"),
    unitNodes: await readSourceIds(client, "units_nodes"),
  };

  const changedRepos = await readChangedRepos(client, {
    since: readFrom(cursors.repos, overlapMs),
    registrySince: readFrom(cursors.repository_registry, overlapMs),
    ids: missingIds(ids.repos, mirrored.repos),
  });
  const changedUnits = await readChangedUnits(client, {
    since: readFrom(cursors.units, overlapMs),
    ids: missingIds(ids.units, mirrored.units),
  });
  const changedNodes = await readChangedUnitNodes(client, {
    since: readFrom(cursors.units_nodes, overlapMs),
    ids: missingIds(ids.unitNodes, mirrored.unitNodes),
  });

  const marks = await readHighWaterMarks(client);
  return {
    users,
    repos: changedRepos,
    units: changedUnits,
    unitNodes: changedNodes,
    ids,
    seen: {
      repos: marks.repos,
      repository_registry: marks.repositoryRegistry,
      units: marks.units,
      units_nodes: marks.unitsNodes,
    },
  };
}
