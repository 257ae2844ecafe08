/**
 * Token buckets for inbox deliveries, one per (claimed host, client IP) pair. Keying on both
 * means that a sender who lies about its host only drains the bucket of that host from its own
 * address, never the real host's bucket from the real host's address.
 */
import type { Config } from "../config.ts";

export interface RateLimitOptions {
  /** Capacity of a full bucket in tokens: the largest burst one pair may send at once. */
  capacity: number;
  /** Tokens added per minute, continuously: the long-run request rate of one pair. */
  refillPerMinute: number;
  /** Maximum number of buckets kept at once; {@link DEFAULT_MAX_BUCKETS} when omitted. */
  maxBuckets?: number;
}

/** Outcome of one request against its bucket. */
export type RateLimitResult =
  | { allowed: true }
  | {
      allowed: false;
      /** Whole seconds until the bucket contains one token again (HTTP `Retry-After`), at least 1. */
      retryAfterSeconds: number;
    };

/**
 * Default bound on live buckets. A bucket is a map entry with a key of at most a few hundred
 * bytes and two numbers, so 10,000 buckets take a few megabytes (an estimate, not a measurement).
 */
export const DEFAULT_MAX_BUCKETS = 10_000;

/** Builds the limiter that `PU_NODE_INBOX_BURST` and `PU_NODE_INBOX_RATE_PER_MINUTE` describe. */
export function createInboxRateLimiter(
  config: Pick<Config, "inboxBurst" | "inboxRatePerMinute">,
): InboxRateLimiter {
  return new InboxRateLimiter({
    capacity: config.inboxBurst,
    refillPerMinute: config.inboxRatePerMinute,
  });
}

interface Bucket {
  tokens: number;
  /** Milliseconds since the epoch at which `tokens` was computed. */
  updatedAt: number;
}

/**
 * Per-(host, IP) token buckets with bounded memory. Buckets live in a `Map` kept in order of
 * last use, so the first entry is always the one idle longest. Two rules drop buckets:
 *
 * - a bucket idle long enough to have refilled completely is dropped on the next call, because
 *   a fresh bucket behaves the same;
 * - when more than `maxBuckets` pairs are active at once, the least recently used bucket is
 *   dropped even if it is not full, which gives that pair a full bucket on its next request.
 *
 * State is per process: several `web` processes each enforce the limit on their own share.
 */
export class InboxRateLimiter {
  readonly #capacity: number;
  readonly #tokensPerMs: number;
  readonly #maxBuckets: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions) {
    if (!(options.capacity >= 1)) {
      throw new RangeError(`Invalid rate limit capacity ${options.capacity}; expected at least 1`);
    }
    if (!(options.refillPerMinute > 0)) {
      throw new RangeError(
        `Invalid rate limit refill ${options.refillPerMinute} per minute; expected a positive number`,
      );
    }
    const maxBuckets = options.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    if (!(maxBuckets >= 1)) {
      throw new RangeError(`Invalid maximum of ${maxBuckets} buckets; expected at least 1`);
    }
    this.#capacity = options.capacity;
    this.#tokensPerMs = options.refillPerMinute / 60_000;
    this.#maxBuckets = maxBuckets;
  }

  /** Number of buckets currently kept. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token from the bucket of (`host`, `address`) at time `now` (milliseconds since
   * the epoch). When the bucket contains less than one token, nothing is taken and the
   * result carries the wait until it contains one.
   */
  take(host: string, address: string, now: number = Date.now()): RateLimitResult {
    this.#dropFullBuckets(now);

    const key = `${host.toLowerCase()} ${address}`;
    const bucket = this.#buckets.get(key) ?? { tokens: this.#capacity, updatedAt: now };
    // Re-inserting moves the key to the end of the map's iteration order (most recent use).
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);

    // A clock that steps back refills nothing rather than draining the bucket.
    const elapsed = Math.max(0, now - bucket.updatedAt);
    bucket.tokens = Math.min(this.#capacity, bucket.tokens + elapsed * this.#tokensPerMs);
    bucket.updatedAt = now;

    if (this.#buckets.size > this.#maxBuckets) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }

    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    const waitMs = (1 - bucket.tokens) / this.#tokensPerMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Drops buckets from the least recently used end while they would be full by `now`. */
  #dropFullBuckets(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      const refilled = bucket.tokens + Math.max(0, now - bucket.updatedAt) * this.#tokensPerMs;
      if (refilled < this.#capacity) return;
      this.#buckets.delete(key);
    }
  }
}
