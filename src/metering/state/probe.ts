/**
 * Shared pieces of the node-state probes: a time limit per probe and rate-limited failure logs.
 */
import { getNodeLogger } from "../../logging.ts";

const logger = getNodeLogger("metering", "state");

/** Raised when a probe does not finish within its time limit. */
export class ProbeTimeoutError extends Error {
  readonly probe: string;
  readonly timeoutMs: number;

  constructor(probe: string, timeoutMs: number) {
    super(`Probe ${probe} timed out after ${timeoutMs} ms`);
    this.name = "ProbeTimeoutError";
    this.probe = probe;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Runs `work` with an abort signal that fires after `timeoutMs`, and rejects with
 * {@link ProbeTimeoutError} at that moment even if `work` ignores the signal.
 */
export async function withTimeout<T>(
  probe: string,
  timeoutMs: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new ProbeTimeoutError(probe, timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  const running = work(controller.signal);
  // A rejection after the timeout has no awaiting caller, so it is caught here to stay handled.
  running.catch(() => undefined);
  try {
    return await Promise.race([running, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Logs probe failures without flooding the log: the first failure of a run of failures in full,
 * then one line per `repeatEveryMs` with the number of failures since, and one line on recovery.
 */
export class ProbeFailureLog {
  readonly #repeatEveryMs: number;
  readonly #now: () => number;
  readonly #state = new Map<string, { failures: number; lastLoggedAt: number }>();

  constructor(options: { repeatEveryMs?: number; now?: () => number } = {}) {
    this.#repeatEveryMs = options.repeatEveryMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  failed(probe: string, error: unknown): void {
    const now = this.#now();
    const state = this.#state.get(probe);
    if (state === undefined) {
      this.#state.set(probe, { failures: 1, lastLoggedAt: now });
      logger.warning("Node-state probe {probe} failed; its values are left out: {error}", {
        probe,
        error,
      });
      return;
    }
    state.failures += 1;
    if (now - state.lastLoggedAt >= this.#repeatEveryMs) {
      state.lastLoggedAt = now;
      logger.warning("Node-state probe {probe} still fails ({failures} in a row): {error}", {
        probe,
        failures: state.failures,
        error,
      });
    }
  }

  succeeded(probe: string): void {
    const state = this.#state.get(probe);
    if (state === undefined) return;
    this.#state.delete(probe);
    logger.info("Node-state probe {probe} recovered after {failures} failures", {
      probe,
      failures: state.failures,
    });
  }
}
