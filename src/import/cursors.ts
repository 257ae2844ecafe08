/**
 * Import cursors: the newest change time seen per Pepeunit table, kept in `import_cursors`.
 * `users` has none because Pepeunit gives users no update timestamp.
 */
import type { DatabaseLike } from "../db/client.ts";
import { importCursors } from "../db/schema/index.ts";

export const CURSOR_TABLES = ["repos", "repository_registry", "units", "units_nodes"] as const;
export type CursorTable = (typeof CURSOR_TABLES)[number];
export type ImportCursors = Record<CursorTable, Date | null>;

export async function readImportCursors(db: DatabaseLike): Promise<ImportCursors> {
  const rows = await db.select().from(importCursors);
  const cursors: ImportCursors = {
    repos: null,
    repository_registry: null,
    units: null,
    units_nodes: null,
  };
  for (const row of rows) {
    if ((CURSOR_TABLES as readonly string[]).includes(row.tableName)) {
      cursors[row.tableName as CursorTable] = row.lastSeenAt;
    }
  }
  return cursors;
}

/**
 * Moves each cursor forward to `seen` (never back: the newest row may have been deleted). Writes
 * only cursors that move, so a run that found no change writes nothing at all.
 */
export async function advanceImportCursors(
  db: DatabaseLike,
  current: ImportCursors,
  seen: ImportCursors,
): Promise<void> {
  for (const table of CURSOR_TABLES) {
    const before = current[table];
    const candidate = seen[table];
    if (candidate === null) continue;
    if (before !== null && candidate.getTime() <= before.getTime()) continue;
    const now = new Date();
    await db
      .insert(importCursors)
      .values({ tableName: table, lastSeenAt: candidate, lastRunAt: now })
      .onConflictDoUpdate({
        target: importCursors.tableName,
        set: { lastSeenAt: candidate, lastRunAt: now },
      });
  }
}

/** Returns `cursor` minus `overlapMs`, or `null` for a table never imported. */
export function readFrom(cursor: Date | null, overlapMs: number): Date | null {
  return cursor === null ? null : new Date(cursor.getTime() - overlapMs);
}
