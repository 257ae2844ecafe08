import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import { createInboxRateLimiter, InboxRateLimiter } from "./rate-limit.ts";

const T0 = Date.parse("2027-01-01T00:00:00Z");

describe("InboxRateLimiter", () => {
  it("allows a burst up to capacity", () => {
    const limiter = new InboxRateLimiter({ capacity: 3, refillPerMinute: 6 });
    for (let i = 0; i < 3; i++) {
      expect(limiter.take("peer.example", "10.0.0.1", T0)).toEqual({ allowed: true });
    }
    expect(limiter.take("peer.example", "10.0.0.1", T0).allowed).toBe(false);
  });

  it("returns the wait for the next token", () => {
    // 6 tokens per minute is one token every 10 seconds.
    const limiter = new InboxRateLimiter({ capacity: 1, refillPerMinute: 6 });
    expect(limiter.take("peer.example", "10.0.0.1", T0).allowed).toBe(true);
    expect(limiter.take("peer.example", "10.0.0.1", T0)).toEqual({
      allowed: false,
      retryAfterSeconds: 10,
    });
    // 2.5 s later a quarter token has arrived; 7.5 s remain, rounded up.
    expect(limiter.take("peer.example", "10.0.0.1", T0 + 2_500)).toEqual({
      allowed: false,
      retryAfterSeconds: 8,
    });
    expect(limiter.take("peer.example", "10.0.0.1", T0 + 10_000)).toEqual({ allowed: true });
  });

  it("never returns a Retry-After below one second", () => {
    const limiter = new InboxRateLimiter({ capacity: 1, refillPerMinute: 60_000 });
    limiter.take("peer.example", "10.0.0.1", T0);
    expect(limiter.take("peer.example", "10.0.0.1", T0)).toEqual({
      allowed: false,
      retryAfterSeconds: 1,
    });
  });

  it("keeps separate buckets per host and address", () => {
    const limiter = new InboxRateLimiter({ capacity: 1, refillPerMinute: 1 });
    expect(limiter.take("peer.example", "10.0.0.1", T0).allowed).toBe(true);
    expect(limiter.take("peer.example", "10.0.0.1", T0).allowed).toBe(false);
    expect(limiter.take("peer.example", "10.0.0.2", T0).allowed).toBe(true);
    expect(limiter.take("other.example", "10.0.0.1", T0).allowed).toBe(true);
    // Host case does not open a second bucket.
    expect(limiter.take("PEER.example", "10.0.0.1", T0).allowed).toBe(false);
  });

  it("does not refill past capacity", () => {
    const limiter = new InboxRateLimiter({ capacity: 2, refillPerMinute: 60 });
    limiter.take("peer.example", "10.0.0.1", T0);
    // A long pause, then three requests: only two tokens may be there.
    const later = T0 + 3_600_000;
    expect(limiter.take("peer.example", "10.0.0.1", later).allowed).toBe(true);
    expect(limiter.take("peer.example", "10.0.0.1", later).allowed).toBe(true);
    expect(limiter.take("peer.example", "10.0.0.1", later).allowed).toBe(false);
  });

  it("drops buckets that refilled while idle", () => {
    const limiter = new InboxRateLimiter({ capacity: 2, refillPerMinute: 60 });
    limiter.take("a.example", "10.0.0.1", T0);
    limiter.take("b.example", "10.0.0.1", T0 + 500);
    expect(limiter.size).toBe(2);
    // At T0 + 1.2 s bucket a is full again but b is not.
    limiter.take("c.example", "10.0.0.1", T0 + 1_200);
    expect(limiter.size).toBe(2);
  });

  it("evicts the least recently used bucket beyond the bound", () => {
    const limiter = new InboxRateLimiter({ capacity: 1, refillPerMinute: 1, maxBuckets: 2 });
    limiter.take("a.example", "10.0.0.1", T0);
    limiter.take("b.example", "10.0.0.1", T0);
    limiter.take("a.example", "10.0.0.1", T0);
    limiter.take("c.example", "10.0.0.1", T0);
    expect(limiter.size).toBe(2);
    // b was least recently used, so it lost its empty bucket; a kept its.
    expect(limiter.take("b.example", "10.0.0.1", T0).allowed).toBe(true);
    expect(limiter.take("c.example", "10.0.0.1", T0).allowed).toBe(false);
  });

  it("tolerates a clock that steps back", () => {
    const limiter = new InboxRateLimiter({ capacity: 1, refillPerMinute: 6 });
    limiter.take("peer.example", "10.0.0.1", T0);
    expect(limiter.take("peer.example", "10.0.0.1", T0 - 60_000)).toEqual({
      allowed: false,
      retryAfterSeconds: 10,
    });
  });

  it("rejects invalid options", () => {
    expect(() => new InboxRateLimiter({ capacity: 0, refillPerMinute: 1 })).toThrow(RangeError);
    expect(() => new InboxRateLimiter({ capacity: 1, refillPerMinute: 0 })).toThrow(RangeError);
    expect(() => new InboxRateLimiter({ capacity: 1, refillPerMinute: 1, maxBuckets: 0 })).toThrow(
      RangeError,
    );
  });
});

describe("inbox rate settings", () => {
  it("default to 300 per minute and a burst of 60", () => {
    const config = loadConfig({});
    expect(config.inboxRatePerMinute).toBe(300);
    expect(config.inboxBurst).toBe(60);
    const limiter = createInboxRateLimiter(config);
    for (let i = 0; i < 60; i++) limiter.take("peer.example", "10.0.0.1", T0);
    // 300 per minute is one token every 200 ms.
    expect(limiter.take("peer.example", "10.0.0.1", T0)).toEqual({
      allowed: false,
      retryAfterSeconds: 1,
    });
    expect(limiter.take("peer.example", "10.0.0.1", T0 + 200)).toEqual({ allowed: true });
  });

  it("reject a value that is not a positive whole number", () => {
    expect(() => loadConfig({ PU_NODE_INBOX_BURST: "0" })).toThrow(/PU_NODE_INBOX_BURST/);
    expect(() => loadConfig({ PU_NODE_INBOX_RATE_PER_MINUTE: "fast" })).toThrow(
      /PU_NODE_INBOX_RATE_PER_MINUTE/,
    );
  });
});
