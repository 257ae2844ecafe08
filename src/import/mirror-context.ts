/** State shared by the write steps of one import run, all inside one node transaction. */
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "@logtape/logtape";
import { recordCatalogueChange } from "../catalogue/changes.ts";
import type { Transaction } from "../db/client.ts";
import { addSkip, type ImportSkip, type ImportSummary } from "./summary.ts";

export interface MirrorContext {
  tx: Transaction;
  summary: ImportSummary;
  logger: Logger;
  /** Repos and Units written in this run; each gets one `catalogue_changes` row at the end. */
  changedRepoIds: Set<string>;
  changedUnitIds: Set<string>;
}

/** Counts a skipped source row and logs a warning that names the row, the cause and the fix. */
export function skipRow(context: MirrorContext, skip: ImportSkip): void {
  addSkip(context.summary, skip);
  context.logger.warn("Skipped Pepeunit {entity} {sourceId} ({reason}): {detail}", { ...skip });
}

/** Returns the keys whose values differ; JSON values are compared by content, not key order. */
export function differingFields<K extends string>(
  current: Record<K, unknown>,
  next: Record<K, unknown>,
  keys: readonly K[],
): K[] {
  return keys.filter((key) => !isDeepStrictEqual(current[key], next[key]));
}

/** Adds one `catalogue_changes` row per changed Repo and Unit, in id order; returns the count. */
export async function recordMirrorChanges(context: MirrorContext): Promise<number> {
  const repoIds = [...context.changedRepoIds].sort();
  const unitIds = [...context.changedUnitIds].sort();
  for (const id of repoIds) await recordCatalogueChange(context.tx, "repo", id);
  for (const id of unitIds) await recordCatalogueChange(context.tx, "unit", id);
  return repoIds.length + unitIds.length;
}

/** Splits `values` so that no statement binds more parameters than PostgreSQL allows (65 535). */
export function chunked<T>(values: readonly T[], size = 1000): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < values.length; start += size) {
    chunks.push(values.slice(start, start + size));
  }
  return chunks;
}
