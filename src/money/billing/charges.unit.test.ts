import { describe, expect, it } from "vitest";
import { cumulativeLoadPrice } from "../pricing.ts";
import { aggregationDayCharge, messagesPerHour, unitHourCharge } from "./charges.ts";

const SETTINGS = { capacityMps: 1, freeMps: 0.1, halfCapacityPrice: 100n };

describe("messagesPerHour", () => {
  it("rounds down to whole messages", () => {
    expect(messagesPerHour(1)).toBe(3600n);
    expect(messagesPerHour(0.0001)).toBe(0n);
    expect(messagesPerHour(2.5)).toBe(9000n);
  });

  it("rejects negative and non-finite rates", () => {
    expect(() => messagesPerHour(-1)).toThrow(/Invalid rate -1/);
    expect(() => messagesPerHour(Number.NaN)).toThrow(RangeError);
    expect(() => messagesPerHour(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe("unitHourCharge", () => {
  it("charges nothing up to the free load", () => {
    const charge = unitHourCharge(360n, SETTINGS);
    expect(charge.price).toEqual({ kind: "finite", amount: 0n });
    expect(charge.freeMessages).toBe(360n);
    expect(charge.capacityMessages).toBe(3600n);
  });

  it("charges the slice above the free load", () => {
    // Q = 3600, F = 360, L = 1800: Ĉ(1800) − Ĉ(360) = 100 − floor(100 · 360² / 3240²) = 100 − 1.
    const charge = unitHourCharge(1800n, SETTINGS);
    expect(charge.price).toEqual({ kind: "finite", amount: 99n });
    const full = cumulativeLoadPrice(1800n, { capacity: 3600n, halfCapacityPrice: 100n });
    const free = cumulativeLoadPrice(360n, { capacity: 3600n, halfCapacityPrice: 100n });
    expect(full).toEqual({ kind: "finite", amount: 100n });
    expect(free).toEqual({ kind: "finite", amount: 1n });
  });

  it("grows without bound near capacity", () => {
    const near = unitHourCharge(3599n, SETTINGS).price;
    expect(near).toEqual({ kind: "finite", amount: 100n * 3599n * 3599n - 1n });
  });

  it("is unbounded at and above capacity", () => {
    expect(unitHourCharge(3600n, SETTINGS).price).toEqual({ kind: "unbounded" });
    expect(unitHourCharge(10_000n, SETTINGS).price).toEqual({ kind: "unbounded" });
  });

  it("charges every message when nothing is free", () => {
    const charge = unitHourCharge(1800n, { ...SETTINGS, freeMps: 0 });
    expect(charge.price).toEqual({ kind: "finite", amount: 100n });
  });

  it("rejects a negative message count", () => {
    expect(() => unitHourCharge(-1n, SETTINGS)).toThrow(/Invalid message count -1/);
  });
});

describe("aggregationDayCharge", () => {
  const policy = { freeAggregationTopics: 5, pricePerAggregationTopic: 10n };

  it("charges nothing within the free units", () => {
    expect(aggregationDayCharge(0, policy)).toBe(0n);
    expect(aggregationDayCharge(5, policy)).toBe(0n);
  });

  it("charges each unit above the free ones", () => {
    expect(aggregationDayCharge(6, policy)).toBe(10n);
    expect(aggregationDayCharge(12, policy)).toBe(70n);
  });

  it("rejects negative and fractional counts", () => {
    expect(() => aggregationDayCharge(-1, policy)).toThrow(/Invalid topic unit count -1/);
    expect(() => aggregationDayCharge(1.5, policy)).toThrow(RangeError);
  });
});
