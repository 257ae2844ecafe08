import { describe, expect, it } from "vitest";
import { minuteStart, overflowTopic, TopicCounters, totalCounts } from "./counters.ts";
import { RecentRate } from "./rate.ts";
import { REDELIVERY_WINDOW, RedeliveryFilter } from "./redelivery.ts";

const T0 = Date.UTC(2026, 11, 4, 12, 30, 15, 250);
const MINUTE = Date.UTC(2026, 11, 4, 12, 30);

describe("TopicCounters", () => {
  it("counts per UTC minute and topic", () => {
    const counters = new TopicCounters(100);
    counters.add("a.com/x", 10, T0);
    counters.add("a.com/x", 5, T0 + 1000);
    counters.add("a.com/x", 7, T0 + 60_000);
    counters.add("b.com/y", 1, T0);
    const snapshot = counters.take();
    expect(snapshot.get(MINUTE)?.get("a.com/x")).toEqual({ messages: 2, bytes: 15 });
    expect(snapshot.get(MINUTE + 60_000)?.get("a.com/x")).toEqual({ messages: 1, bytes: 7 });
    expect(snapshot.get(MINUTE)?.get("b.com/y")).toEqual({ messages: 1, bytes: 1 });
    expect(counters.keyCount).toBe(0);
  });

  it("folds new topics into the overflow row past the cap", () => {
    const counters = new TopicCounters(2);
    counters.add("a.com/1", 1, T0);
    counters.add("a.com/2", 1, T0);
    counters.add("a.com/3", 4, T0);
    counters.add("a.com/4", 4, T0);
    counters.add("Bad_Domain/5", 2, T0);
    counters.add("a.com/1", 1, T0);
    const minute = counters.take().get(MINUTE);
    expect(minute?.get("a.com/1")).toEqual({ messages: 2, bytes: 2 });
    expect(minute?.get(overflowTopic("a.com"))).toEqual({ messages: 2, bytes: 8 });
    expect(minute?.get(overflowTopic(""))).toEqual({ messages: 1, bytes: 2 });
    expect(minute?.has("a.com/3")).toBe(false);
    expect(counters.overflowMessages).toBe(3);
  });

  it("restores a snapshot without losing counts", () => {
    const counters = new TopicCounters(100);
    counters.add("a.com/x", 3, T0);
    const snapshot = counters.take();
    counters.add("a.com/x", 2, T0);
    counters.restore(snapshot);
    expect(totalCounts(counters.take())).toEqual({ messages: 2, bytes: 5, topics: 1 });
  });

  it("rejects a cap that is not a positive whole number", () => {
    expect(() => new TopicCounters(0)).toThrow(RangeError);
    expect(() => new TopicCounters(1.5)).toThrow(RangeError);
  });

  it("aligns minutes to UTC", () => {
    expect(minuteStart(T0)).toBe(MINUTE);
  });
});

describe("RedeliveryFilter", () => {
  it("skips a DUP message with a counted id", () => {
    const filter = new RedeliveryFilter();
    expect(filter.isRedelivery(7, false)).toBe(false);
    expect(filter.isRedelivery(7, true)).toBe(true);
  });

  it("counts a DUP message with a new id", () => {
    expect(new RedeliveryFilter().isRedelivery(7, true)).toBe(false);
  });

  it("counts QoS 0 messages", () => {
    const filter = new RedeliveryFilter();
    expect(filter.isRedelivery(undefined, false)).toBe(false);
    expect(filter.isRedelivery(undefined, true)).toBe(false);
  });

  it("counts a reused id without DUP", () => {
    const filter = new RedeliveryFilter();
    filter.isRedelivery(7, false);
    expect(filter.isRedelivery(7, false)).toBe(false);
  });

  it("counts a DUP id counted outside the window", () => {
    const filter = new RedeliveryFilter();
    filter.isRedelivery(1, false);
    for (let index = 0; index < REDELIVERY_WINDOW; index += 1) {
      filter.isRedelivery(2 + (index % 60_000), false);
    }
    expect(filter.isRedelivery(1, true)).toBe(false);
  });

  it("forgets ids on reset", () => {
    const filter = new RedeliveryFilter();
    filter.isRedelivery(7, false);
    filter.reset();
    expect(filter.isRedelivery(7, true)).toBe(false);
  });
});

describe("RecentRate", () => {
  it("averages over the time since start when it is short", () => {
    const rate = new RecentRate(T0);
    // T0 is 15.25 s past the minute: 30 messages within the seconds 15, 16 and 17.
    for (let index = 0; index < 30; index += 1) rate.record(T0 + index * 90);
    expect(rate.perSecond(T0 + 2600)).toBe(10);
  });

  it("forgets messages older than the window", () => {
    const rate = new RecentRate(T0);
    rate.record(T0, 600);
    expect(rate.perSecond(T0 + 30_000)).toBeCloseTo(600 / 31);
    expect(rate.perSecond(T0 + 61_000)).toBe(0);
  });
});
