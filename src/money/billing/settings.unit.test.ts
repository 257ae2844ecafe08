import { describe, expect, it } from "vitest";
import {
  applySettingsChange,
  type BillingSettings,
  billingColour,
  changedSettingsFields,
  effectiveHalfCapacityPrice,
  InvalidBillingSettingsError,
  settingsJson,
} from "./settings.ts";

const SETTINGS: BillingSettings = {
  enabled: false,
  monthlyAllowance: 1000n,
  region: "default",
  regionPrices: { default: 500n },
  instancePrice: null,
  freeMps: 1,
  unitYellowPercentile: 50,
  unitRedPercentile: 80,
  freeAggregationTopics: 5,
  pricePerAggregationTopic: 10n,
};

describe("applySettingsChange", () => {
  it("changes only the given fields", () => {
    const next = applySettingsChange(SETTINGS, {
      enabled: true,
      monthlyAllowance: "2000",
      pricePerAggregationTopic: 3,
    });
    expect(next).toEqual({
      ...SETTINGS,
      enabled: true,
      monthlyAllowance: 2000n,
      pricePerAggregationTopic: 3n,
    });
  });

  it("clears the instance price with null", () => {
    const withPrice = applySettingsChange(SETTINGS, { instancePrice: 7 });
    expect(withPrice.instancePrice).toBe(7n);
    expect(applySettingsChange(withPrice, { instancePrice: null }).instancePrice).toBeNull();
  });

  it("rejects an invalid field with its name", () => {
    const error = (() => {
      try {
        applySettingsChange(SETTINGS, { monthlyAllowance: -1 });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(InvalidBillingSettingsError);
    expect((error as InvalidBillingSettingsError).field).toBe("monthlyAllowance");
  });

  it("rejects a body that is not an object", () => {
    expect(() => applySettingsChange(SETTINGS, "on")).toThrow(/field body/);
  });

  it("rejects unknown fields", () => {
    expect(() => applySettingsChange(SETTINGS, { price: 1 })).toThrow(InvalidBillingSettingsError);
  });

  it("rejects a yellow percentile not below red", () => {
    expect(() => applySettingsChange(SETTINGS, { unitYellowPercentile: 80 })).toThrow(
      /80 must be below unitRedPercentile \(80\)/,
    );
  });

  it("rejects region prices without the default region", () => {
    expect(() => applySettingsChange(SETTINGS, { regionPrices: { "eu-west": 1 } })).toThrow(
      /must include the region default/,
    );
  });
});

describe("effectiveHalfCapacityPrice", () => {
  const regional = { ...SETTINGS, regionPrices: { default: 500n, "eu-west": 300n } };

  it("uses the instance price first", () => {
    expect(effectiveHalfCapacityPrice({ ...regional, instancePrice: 9n })).toBe(9n);
  });

  it("uses the price of the instance's region", () => {
    expect(effectiveHalfCapacityPrice({ ...regional, region: "eu-west" })).toBe(300n);
  });

  it("falls back to the default region", () => {
    expect(effectiveHalfCapacityPrice({ ...regional, region: "asia" })).toBe(500n);
  });
});

describe("changedSettingsFields", () => {
  it("lists the changed fields", () => {
    const next = { ...SETTINGS, enabled: true, regionPrices: { default: 500n, x: 1n } };
    expect(changedSettingsFields(SETTINGS, next)).toEqual(["enabled", "regionPrices"]);
  });

  it("ignores the order of regions", () => {
    const a = { ...SETTINGS, regionPrices: { default: 1n, x: 2n } };
    const b = { ...SETTINGS, regionPrices: { x: 2n, default: 1n } };
    expect(changedSettingsFields(a, b)).toEqual([]);
  });

  it("writes tokens as decimal strings", () => {
    const json = settingsJson({ ...SETTINGS, instancePrice: 4n });
    expect(json.monthlyAllowance).toBe("1000");
    expect(json.instancePrice).toBe("4");
    expect(json.regionPrices).toEqual({ default: "500" });
  });
});

describe("billingColour", () => {
  it("colours by the thresholds", () => {
    expect(billingColour(0, SETTINGS)).toBe("green");
    expect(billingColour(49.9, SETTINGS)).toBe("green");
    expect(billingColour(50, SETTINGS)).toBe("yellow");
    expect(billingColour(80, SETTINGS)).toBe("red");
    expect(billingColour(100, SETTINGS)).toBe("red");
  });
});
