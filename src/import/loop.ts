/** Scheduling of the Pepeunit import: a loop for the worker role and a single run for the CLI. */
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { createPool, type Database, describeDatabaseUrl } from "../db/client.ts";
import { getNodeLogger } from "../logging.ts";
import { importFromPepeunit, type PepeunitImportOptions } from "./pepeunit.ts";
import type { ImportSummary } from "./summary.ts";

const logger = getNodeLogger("import", "loop");

/**
 * Opens a small pool to the Pepeunit database. One run uses one connection, and the second one
 * lets a CLI run and the worker loop overlap without waiting for a connection.
 */
export function createPepeunitSourcePool(url: string): pg.Pool {
  return createPool({ url, max: 2, applicationName: "pepeunit-node-import" });
}

/**
 * Runs one import against the Pepeunit database at `sourceUrl`, then closes the connection. This
 * is the entry point for a one-off CLI run.
 */
export async function runPepeunitImportOnce(
  db: Database,
  sourceUrl: string,
  options: PepeunitImportOptions = {},
): Promise<ImportSummary> {
  logger.info("Connecting to the Pepeunit database at {url}", {
    url: describeDatabaseUrl(sourceUrl),
  });
  const source = createPepeunitSourcePool(sourceUrl);
  try {
    return await importFromPepeunit(db, source, options);
  } finally {
    await source.end();
  }
}

export interface PepeunitImportLoopOptions extends PepeunitImportOptions {
  db: Database;
  source: pg.Pool;
  /** Pause between the end of one run and the start of the next, in seconds. */
  intervalSeconds: number;
  /** Stops the loop; a run in progress finishes first. */
  signal: AbortSignal;
  /** Called after every run with its summary, or with the error that ended it. */
  onRunFinished?: (result: { summary?: ImportSummary; error?: unknown }) => void;
}

/**
 * Runs the import now and then every `intervalSeconds` until `signal` aborts. A failed run is
 * logged (by the importer, with its error) and retried at the next interval, so a failed run
 * never ends the loop. Resolves once the loop has stopped. The caller owns and closes `source`.
 */
export async function startPepeunitImportLoop(options: PepeunitImportLoopOptions): Promise<void> {
  const { db, source, intervalSeconds, signal, onRunFinished, ...importOptions } = options;
  let consecutiveFailures = 0;
  logger.info("Pepeunit import loop started; interval {intervalSeconds} s", { intervalSeconds });

  while (!signal.aborted) {
    let result: { summary?: ImportSummary; error?: unknown };
    try {
      result = { summary: await importFromPepeunit(db, source, importOptions) };
      consecutiveFailures = 0;
    } catch (error) {
      consecutiveFailures += 1;
      logger.warn(
        "Pepeunit import run failed ({consecutiveFailures} in a row); next attempt in {intervalSeconds} s",
        { consecutiveFailures, intervalSeconds },
      );
      result = { error };
    }
    onRunFinished?.(result);

    try {
      await sleep(intervalSeconds * 1000, undefined, { signal });
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }

  logger.info("Pepeunit import loop stopped");
}
