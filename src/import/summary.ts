/** Result types of a Pepeunit import run: counts per entity and every skipped row with its reason. */

export const IMPORT_ENTITIES = ["user", "repo", "unit", "unitNode"] as const;
export type ImportEntity = (typeof IMPORT_ENTITIES)[number];

/**
 * Why a source row was not mirrored:
 * - `invalid-value`: a column contains a value Pepeunit never writes (an unknown visibility, say);
 * - `id-conflict`: a row created on this node already has the same UUID;
 * - `name-conflict`: a row created on this node (or a Pepeunit row that keeps its name) already
 *   has the login or name, which is unique in both databases;
 * - `missing-parent`: the Repo of a Unit, or the Unit of a UnitNode, is not mirrored;
 * - `git-host-denied`: the git host rules reject the host of a Repo's repository URL, or the
 *   URL is in no form whose host can be checked.
 */
export type ImportSkipReason =
  | "invalid-value"
  | "id-conflict"
  | "name-conflict"
  | "missing-parent"
  | "git-host-denied";

export interface ImportSkip {
  entity: ImportEntity;
  /** UUID of the row in the Pepeunit database. */
  sourceId: string;
  reason: ImportSkipReason;
  /** Plain-language explanation naming the other row and the fix. */
  detail: string;
}

export interface EntityCounts {
  inserted: number;
  updated: number;
  deleted: number;
  /** Source rows read in this run that already matched the node's row. */
  unchanged: number;
  skipped: number;
}

export interface ImportSummary {
  startedAt: Date;
  finishedAt: Date;
  counts: Record<ImportEntity, EntityCounts>;
  skips: ImportSkip[];
  /** Rows added to `catalogue_changes`: one per changed Repo or Unit. */
  catalogueChanges: number;
}

export function createImportSummary(startedAt: Date): ImportSummary {
  const counts = {} as Record<ImportEntity, EntityCounts>;
  for (const entity of IMPORT_ENTITIES) {
    counts[entity] = { inserted: 0, updated: 0, deleted: 0, unchanged: 0, skipped: 0 };
  }
  return { startedAt, finishedAt: startedAt, counts, skips: [], catalogueChanges: 0 };
}

export function addSkip(summary: ImportSummary, skip: ImportSkip): void {
  summary.counts[skip.entity].skipped += 1;
  summary.skips.push(skip);
}

/** Returns the number of skips per reason, for log lines and the CLI. */
export function countSkipReasons(summary: ImportSummary): Record<ImportSkipReason, number> {
  const result: Record<ImportSkipReason, number> = {
    "invalid-value": 0,
    "id-conflict": 0,
    "name-conflict": 0,
    "missing-parent": 0,
    "git-host-denied": 0,
  };
  for (const skip of summary.skips) result[skip.reason] += 1;
  return result;
}
