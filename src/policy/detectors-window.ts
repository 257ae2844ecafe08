/**
 * Sliding-window event counters per key with bounded memory, for the ban detectors. Each key has
 * a ring of {@link WINDOW_BUCKETS} buckets that together span the window, so a count covers the
 * last `windowMs` to within one bucket (1/60 of the window) and costs a fixed amount of memory
 * whatever the event rate.
 */

/** Buckets per window; the count's resolution is the window divided by this. */
export const WINDOW_BUCKETS = 60;

/** Default bound on tracked keys; the least recently used key is dropped beyond it. */
export const DEFAULT_MAX_KEYS = 10_000;

/** Default number of recent events kept per key as samples for the evidence. */
export const DEFAULT_MAX_SAMPLES = 5;

export interface SlidingWindowOptions {
  /** The count at which {@link SlidingWindowCounter.add} reports a crossing; at least 1. */
  limit: number;
  windowMs: number;
  maxKeys?: number;
  maxSamples?: number;
}

/** The counted events of one key at the moment its count reached the limit. */
export interface WindowCrossing<Sample> {
  count: number;
  /** Milliseconds since the epoch of the first and last counted event. */
  firstAt: number;
  lastAt: number;
  /** The most recent events, oldest first. */
  samples: Sample[];
}

interface KeyState<Sample> {
  counts: Uint32Array;
  /** Time of the first event in each bucket, valid where the count is not 0. */
  firstAts: Float64Array;
  /** Absolute number (time / bucket length) of the newest bucket. */
  head: number;
  total: number;
  lastAt: number;
  samples: Sample[];
}

/**
 * Counts events per key over a sliding window. When a key's count reaches the limit, `add`
 * returns the crossing and deletes the key, so each crossing is reported once and the next one
 * needs `limit` new events.
 *
 * Keys live in a `Map` kept in order of last use. Beyond `maxKeys` the least recently used key is
 * dropped with its count, so a sender that names many keys can push out the count of another.
 */
export class SlidingWindowCounter<Sample> {
  readonly limit: number;
  readonly windowMs: number;
  readonly #bucketMs: number;
  readonly #maxKeys: number;
  readonly #maxSamples: number;
  readonly #keys = new Map<string, KeyState<Sample>>();

  constructor(options: SlidingWindowOptions) {
    if (!(Number.isInteger(options.limit) && options.limit >= 1)) {
      throw new RangeError(`Invalid window limit ${options.limit}; expected a whole number from 1`);
    }
    if (!(options.windowMs > 0)) {
      throw new RangeError(`Invalid window of ${options.windowMs} ms; expected a positive length`);
    }
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.#bucketMs = options.windowMs / WINDOW_BUCKETS;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    this.#maxSamples = options.maxSamples ?? DEFAULT_MAX_SAMPLES;
  }

  /** Number of keys currently tracked. */
  get size(): number {
    return this.#keys.size;
  }

  /** Returns the events of `key` counted in the window ending at `now` (milliseconds). */
  count(key: string, now: number): number {
    const state = this.#keys.get(key);
    if (state === undefined) return 0;
    this.#advance(state, Math.floor(now / this.#bucketMs));
    return state.total;
  }

  /**
   * Counts one event of `key` at `at` (milliseconds since the epoch). Returns the crossing when
   * the count reaches the limit, otherwise undefined.
   */
  add(key: string, at: number, sample: Sample): WindowCrossing<Sample> | undefined {
    const bucket = Math.floor(at / this.#bucketMs);
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = {
        counts: new Uint32Array(WINDOW_BUCKETS),
        firstAts: new Float64Array(WINDOW_BUCKETS),
        head: bucket,
        total: 0,
        lastAt: at,
        samples: [],
      };
    }
    // Re-inserting moves the key to the end of the map's iteration order (most recent use).
    this.#keys.delete(key);
    this.#keys.set(key, state);
    if (this.#keys.size > this.#maxKeys) {
      const oldest = this.#keys.keys().next().value;
      if (oldest !== undefined) this.#keys.delete(oldest);
    }

    this.#advance(state, bucket);
    // A clock that steps back counts the event in the newest bucket.
    const slot = Math.max(bucket, state.head) % WINDOW_BUCKETS;
    if (state.counts[slot] === 0) state.firstAts[slot] = at;
    state.counts[slot] = (state.counts[slot] ?? 0) + 1;
    state.total++;
    state.lastAt = Math.max(state.lastAt, at);
    state.samples.push(sample);
    if (state.samples.length > this.#maxSamples) state.samples.shift();

    if (state.total < this.limit) return undefined;
    this.#keys.delete(key);
    return {
      count: state.total,
      firstAt: this.#firstAt(state),
      lastAt: state.lastAt,
      samples: state.samples,
    };
  }

  /** Empties the buckets that left the window when the newest bucket moves to `bucket`. */
  #advance(state: KeyState<Sample>, bucket: number): void {
    if (bucket <= state.head) return;
    const steps = Math.min(bucket - state.head, WINDOW_BUCKETS);
    for (let step = 1; step <= steps; step++) {
      const slot = (state.head + step) % WINDOW_BUCKETS;
      state.total -= state.counts[slot] ?? 0;
      state.counts[slot] = 0;
    }
    state.head = bucket;
  }

  /** Returns the time of the first event in the oldest non-empty bucket. */
  #firstAt(state: KeyState<Sample>): number {
    for (let step = 1; step <= WINDOW_BUCKETS; step++) {
      const slot = (state.head + step) % WINDOW_BUCKETS;
      if ((state.counts[slot] ?? 0) > 0) return state.firstAts[slot] ?? state.lastAt;
    }
    return state.lastAt;
  }
}
