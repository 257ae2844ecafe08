/**
 * Per-minute frequency counts of error records by fingerprint, with bounded memory, and the
 * flusher that writes them to the time-series store.
 */
import { createHash } from "node:crypto";
import { getNodeLogger } from "../../logging.ts";
import type { ErrorCountRow, ErrorLevel, ErrorSource } from "../../timeseries/types.ts";

const logger = getNodeLogger("metering", "errors");

export const SAMPLE_MAX_LENGTH = 200;
/** Fingerprint of the records that arrive after a minute already contains the maximum of kinds. */
export const OVERFLOW_FINGERPRINT = "overflow";

/**
 * Returns the fingerprint of an error kind: the first 16 hex digits of SHA-256 over the source,
 * category and message template. Records that differ only in interpolated values share it.
 */
export function fingerprintOf(source: ErrorSource, category: string, template: string): string {
  return createHash("sha256")
    .update(`${source}\n${category}\n${template}`)
    .digest("hex")
    .slice(0, 16);
}

/** Cuts `text` to {@link SAMPLE_MAX_LENGTH} characters, marking a cut with `…`. */
export function cutSample(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= SAMPLE_MAX_LENGTH ? flat : `${flat.slice(0, SAMPLE_MAX_LENGTH - 1)}…`;
}

/** Start of the UTC minute that contains `time`. */
export function minuteOf(time: Date | number): Date {
  const ms = typeof time === "number" ? time : time.getTime();
  return new Date(ms - (((ms % 60_000) + 60_000) % 60_000));
}

export interface ErrorOccurrence {
  time: Date;
  source: ErrorSource;
  level: ErrorLevel;
  category: string;
  fingerprint: string;
  /** Full message; it is cut to {@link SAMPLE_MAX_LENGTH} before it is kept. */
  message: string;
  /** How many records this occurrence stands for; 1 unless merging earlier counts. */
  count?: number;
}

export interface ErrorCounterOptions {
  /** Distinct fingerprints kept per minute and source; more go to `overflow`. 200 unless set. */
  maxFingerprintsPerMinute?: number;
  /** Minutes kept while the store is unreachable; older ones are discarded with a log. 1440. */
  maxPendingMinutes?: number;
}

/**
 * Counts error records per UTC minute, source and fingerprint. Memory is bounded: each minute
 * and source keeps at most `maxFingerprintsPerMinute` fingerprints plus `overflow`, and at most
 * `maxPendingMinutes` minutes are kept. The number of records discarded past the second bound is
 * logged, never dropped silently.
 */
export class ErrorCounter {
  readonly #maxFingerprints: number;
  readonly #maxMinutes: number;
  /** minute ms → "source fingerprint" → row */
  readonly #minutes = new Map<number, Map<string, ErrorCountRow>>();

  constructor(options: ErrorCounterOptions = {}) {
    this.#maxFingerprints = options.maxFingerprintsPerMinute ?? 200;
    this.#maxMinutes = options.maxPendingMinutes ?? 1440;
  }

  add(occurrence: ErrorOccurrence): void {
    const minute = minuteOf(occurrence.time);
    let rows = this.#minutes.get(minute.getTime());
    if (rows === undefined) {
      rows = new Map();
      this.#minutes.set(minute.getTime(), rows);
      this.#discardOldestBeyondLimit();
    }
    const count = occurrence.count ?? 1;
    const key = `${occurrence.source} ${occurrence.fingerprint}`;
    const existing = rows.get(key);
    if (existing !== undefined) {
      existing.count += count;
      if (occurrence.level === "critical") existing.level = "critical";
      return;
    }

    const sameSource = [...rows.values()].filter(
      (row) => row.source === occurrence.source && row.fingerprint !== OVERFLOW_FINGERPRINT,
    ).length;
    if (sameSource >= this.#maxFingerprints && occurrence.fingerprint !== OVERFLOW_FINGERPRINT) {
      this.add({
        ...occurrence,
        fingerprint: OVERFLOW_FINGERPRINT,
        category: "overflow",
        message: `More than ${this.#maxFingerprints} kinds of error in this minute`,
      });
      return;
    }
    rows.set(key, {
      minute,
      source: occurrence.source,
      fingerprint: occurrence.fingerprint,
      level: occurrence.level,
      category: occurrence.category,
      sample: cutSample(occurrence.message),
      count,
    });
  }

  /** Removes and returns the rows of minutes that started before `before` (all when omitted). */
  take(before?: Date): ErrorCountRow[] {
    const taken: ErrorCountRow[] = [];
    for (const [minute, rows] of this.#minutes) {
      if (before !== undefined && minute + 60_000 > before.getTime()) continue;
      taken.push(...rows.values());
      this.#minutes.delete(minute);
    }
    return taken;
  }

  /** Puts rows back, e.g. after a failed write, so the next flush retries them. */
  restore(rows: readonly ErrorCountRow[]): void {
    for (const row of rows) {
      this.add({ ...row, time: row.minute, message: row.sample, count: row.count });
    }
  }

  get pendingMinutes(): number {
    return this.#minutes.size;
  }

  #discardOldestBeyondLimit(): void {
    while (this.#minutes.size > this.#maxMinutes) {
      const oldest = Math.min(...this.#minutes.keys());
      const rows = this.#minutes.get(oldest);
      this.#minutes.delete(oldest);
      const records = [...(rows?.values() ?? [])].reduce((sum, row) => sum + row.count, 0);
      logger.error(
        "Discarded {records} error counts of minute {minute}: more than {maxMinutes} minutes were waiting for the store",
        { records, minute: new Date(oldest).toISOString(), maxMinutes: this.#maxMinutes },
      );
    }
  }
}

/** Destination of error counts; the time-series store implements it. Rows with equal keys add up. */
export interface ErrorCountSink {
  writeErrorCounts(rows: ErrorCountRow[]): Promise<void>;
}

/**
 * Writes the counts of finished minutes every `intervalMs` (a minute is finished 2 s after its
 * end, which leaves room for records logged with a slightly older timestamp). A failed write puts
 * the rows back for the next flush. `stop()` flushes everything, the current minute too.
 */
export class ErrorCountFlusher {
  readonly #counter: ErrorCounter;
  readonly #sink: ErrorCountSink;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  #running: Promise<void> = Promise.resolve();
  #failuresInRow = 0;

  constructor(
    counter: ErrorCounter,
    sink: ErrorCountSink,
    options: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.#counter = counter;
    this.#sink = sink;
    this.#now = options.now ?? Date.now;
    this.#timer = setInterval(() => {
      void this.flush();
    }, options.intervalMs ?? 5000);
    this.#timer.unref();
  }

  /** Writes finished minutes (all minutes when `all`); never throws. */
  flush(all = false): Promise<void> {
    this.#running = this.#running.then(() => this.#flushOnce(all));
    return this.#running;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush(true);
  }

  async #flushOnce(all: boolean): Promise<void> {
    const rows = this.#counter.take(all ? undefined : new Date(this.#now() - 2000));
    if (rows.length === 0) return;
    try {
      await this.#sink.writeErrorCounts(rows);
      if (this.#failuresInRow > 0) {
        logger.info("Error counts are written again after {failures} failed flushes", {
          failures: this.#failuresInRow,
        });
      }
      this.#failuresInRow = 0;
    } catch (error) {
      this.#counter.restore(rows);
      this.#failuresInRow += 1;
      // Logged as a warning, because an error record here would be counted by the same counter
      // whose write just failed. The first failures in full, then every 60th.
      if (this.#failuresInRow <= 3 || this.#failuresInRow % 60 === 0) {
        logger.warning("Writing {rows} error counts failed ({failures} in a row): {error}", {
          rows: rows.length,
          failures: this.#failuresInRow,
          error,
        });
      }
    }
  }
}
