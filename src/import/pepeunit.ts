/**
 * Read-only, incremental mirror of a Pepeunit instance's users, Repos (with their registry
 * rows), Units and UnitNodes into the node's tables, keeping Pepeunit's UUIDs and visibility.
 *
 * A run reads one consistent snapshot of the source and applies it in one node transaction:
 * deletions first (children first), then inserts and updates (parents first), then one
 * `catalogue_changes` row per changed Repo or Unit, then the cursors. A run that finds nothing
 * new writes nothing. Rows created on the node are never overwritten; a Pepeunit row that
 * collides with one is skipped, counted and logged with both ids.
 */
import { sql } from "drizzle-orm";
import type pg from "pg";
import type { Database } from "../db/client.ts";
import { getNodeLogger } from "../logging.ts";
import { advanceImportCursors, readImportCursors } from "./cursors.ts";
import { type MirrorContext, recordMirrorChanges } from "./mirror-context.ts";
import { deleteVanishedRows } from "./mirror-deletions.ts";
import { mirrorRepos } from "./mirror-repos.ts";
import { mirrorUnitNodes, mirrorUnits } from "./mirror-units.ts";
import { mirrorUsers } from "./mirror-users.ts";
import { readMirroredIds, readPepeunitSnapshot } from "./snapshot.ts";
import { withSourceSnapshot } from "./source.ts";
import { countSkipReasons, createImportSummary, type ImportSummary } from "./summary.ts";

const logger = getNodeLogger("import", "pepeunit");

export const DEFAULT_OVERLAP_SECONDS = 300;

export interface PepeunitImportOptions {
  /**
   * Seconds re-read before each cursor on every run. Pepeunit stamps rows in application code
   * before its transaction commits, so a row can become visible after a newer-stamped one. The
   * overlap, and the rule that rows the node lacks are always read, keep such rows from being
   * missed. Default 300.
   */
  overlapSeconds?: number;
}

/**
 * Mirrors the Pepeunit database behind `source` into `db` once and returns what changed.
 * Concurrent runs against the same node database wait for each other (advisory lock).
 *
 * @throws the database error that ended the run. The node transaction is rolled back, so a
 *   failed run changes nothing and the next run starts from the same cursors.
 */
export async function importFromPepeunit(
  db: Database,
  source: pg.Pool,
  options: PepeunitImportOptions = {},
): Promise<ImportSummary> {
  const overlapMs = (options.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS) * 1000;
  const summary = createImportSummary(new Date());
  logger.info("Pepeunit import started");

  try {
    await db.transaction(async (tx) => {
      await tx.execute(
        sql`select pg_advisory_xact_lock(hashtextextended('pepeunit-node:pepeunit-import', 0))`,
      );
      const cursors = await readImportCursors(tx);
      const mirrored = await readMirroredIds(tx);
      const snapshot = await withSourceSnapshot(source, (client) =>
        readPepeunitSnapshot(client, cursors, mirrored, overlapMs),
      );

      const context: MirrorContext = {
        tx,
        summary,
        logger,
        changedRepoIds: new Set(),
        changedUnitIds: new Set(),
      };
      await deleteVanishedRows(context, snapshot.ids);
      await mirrorUsers(context, snapshot.users);
      await mirrorRepos(context, snapshot.repos);
      await mirrorUnits(context, snapshot.units);
      await mirrorUnitNodes(context, snapshot.unitNodes);
      summary.catalogueChanges = await recordMirrorChanges(context);
      await advanceImportCursors(tx, cursors, snapshot.seen);
    });
  } catch (error) {
    summary.finishedAt = new Date();
    logger.error("Pepeunit import failed after {durationMs} ms; nothing was written: {error}", {
      durationMs: summary.finishedAt.getTime() - summary.startedAt.getTime(),
      error,
    });
    throw error;
  }

  summary.finishedAt = new Date();
  logger.info(
    "Pepeunit import finished in {durationMs} ms: {catalogueChanges} catalogue changes, {skipped} rows skipped",
    {
      durationMs: summary.finishedAt.getTime() - summary.startedAt.getTime(),
      catalogueChanges: summary.catalogueChanges,
      skipped: summary.skips.length,
      counts: summary.counts,
      skipReasons: countSkipReasons(summary),
    },
  );
  return summary;
}
