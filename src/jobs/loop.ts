import { setTimeout as sleep } from "node:timers/promises";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("server", "jobs");

export interface PeriodicJob {
  name: string;
  intervalMs: number;
  /** Returns true when it did work and should run again at once (a queue not yet drained). */
  run: () => Promise<boolean | undefined>;
}

/**
 * Runs `job` every `intervalMs` until `signal` aborts. A failed run is logged and retried at
 * the next interval; the loop itself never throws.
 */
export async function runPeriodically(job: PeriodicJob, signal: AbortSignal): Promise<void> {
  logger.info("Job {job} started, every {intervalMs} ms", {
    job: job.name,
    intervalMs: job.intervalMs,
  });
  let failuresInRow = 0;
  while (!signal.aborted) {
    let again = false;
    try {
      again = (await job.run()) === true;
      if (failuresInRow > 0) logger.info("Job {job} recovered", { job: job.name });
      failuresInRow = 0;
    } catch (error) {
      failuresInRow += 1;
      // Log the first failures in full, then every 60th, so an outage does not flood the log.
      if (failuresInRow <= 3 || failuresInRow % 60 === 0) {
        logger.error("Job {job} failed ({failuresInRow} in a row): {error}", {
          job: job.name,
          failuresInRow,
          error,
        });
      }
    }
    if (again) continue;
    await sleep(job.intervalMs, undefined, { signal }).catch(() => undefined);
  }
  logger.info("Job {job} stopped", { job: job.name });
}
