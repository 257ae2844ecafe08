/**
 * The prices that billing charges, in the form that the signed load report and NodeInfo publish.
 * Both take them from the billing settings in force and from this one function, so they show the
 * same figures as each other and as the charges. docs/load-report.md describes every field.
 */
import type { StoredBillingSettings } from "../billing/settings-store.ts";
import {
  effectiveHalfCapacityPrice,
  messagesPerHour,
  unitHourCharge,
} from "../money/billing/index.ts";

/** Name of the price curve of hourly Unit charges, C(L) = K · L² / (Q − L)² (docs/pricing.md). */
export const LOAD_PRICE_CURVE = "pepeunit-progressive-v1";
export const LOAD_PRICE_FORMULA = "C(L) = K * L^2 / (Q - L)^2";

const MESSAGES_PER_HOUR_AT_ONE_MPS = 3600n;

export interface PublishedPriceParameters {
  currency: "token";
  /** Whether monetisation is on. While it is off, billing charges nothing. */
  enabled: boolean;
  region: string;
  /** Free tokens every user gets each UTC month, as a decimal string. */
  monthlyFreeTokens: string;
  curve: {
    name: typeof LOAD_PRICE_CURVE;
    formula: typeof LOAD_PRICE_FORMULA;
    /** Unit of L, Q and F. */
    loadUnit: "messages per hour";
    /** Rounding of charges: Ĉ(x) = floor(C(x)), and a Unit's charge is Ĉ(L) − Ĉ(F). */
    rounding: "floor";
  };
  capacityMps: number;
  /** Q: floor(capacityMps · 3600). */
  capacityMessagesPerHour: number;
  /** K in tokens, as a decimal string: the instance price, else its region's, else `default`'s. */
  halfCapacityPrice: string;
  /** Mean MPS of one Unit over an hour that is never charged. */
  freeMps: number;
  /** F: floor(freeMps · 3600). */
  freeMessagesPerHour: number;
  /**
   * Tokens charged for one hour of a yellow or red Unit whose mean load is one MPS above
   * `freeMps`: Ĉ(F + 3600) − Ĉ(F), or `unbounded` when F + 3600 reaches Q. Further MPS cost
   * more, because the curve is convex.
   */
  firstMpsAboveFreePrice: string;
  unitYellowPercentile: number;
  unitRedPercentile: number;
  freeAggregationTopics: number;
  /** Tokens per aggregation topic unit above the free ones and day, as a decimal string. */
  pricePerAggregationTopic: string;
  aggregationTopicBytes: number;
  /** Time of the last change of the billing settings. */
  settingsUpdatedAt: string;
}

/** The instance figures that are configuration rather than billing settings. */
export interface InstancePriceFigures {
  capacityMps: number;
  aggregationTopicBytes: number;
}

/** Returns the published prices of `stored` settings on an instance with `figures`. */
export function publishedPriceParameters(
  stored: StoredBillingSettings,
  figures: InstancePriceFigures,
): PublishedPriceParameters {
  const { settings } = stored;
  const halfCapacityPrice = effectiveHalfCapacityPrice(settings);
  const priceSettings = {
    capacityMps: figures.capacityMps,
    freeMps: settings.freeMps,
    halfCapacityPrice,
  };
  // The same function that prices the hourly charges, so this figure is what billing charges.
  const freeMessages = messagesPerHour(settings.freeMps);
  const firstMps = unitHourCharge(freeMessages + MESSAGES_PER_HOUR_AT_ONE_MPS, priceSettings);

  return {
    currency: "token",
    enabled: settings.enabled,
    region: settings.region,
    monthlyFreeTokens: settings.monthlyAllowance.toString(),
    curve: {
      name: LOAD_PRICE_CURVE,
      formula: LOAD_PRICE_FORMULA,
      loadUnit: "messages per hour",
      rounding: "floor",
    },
    capacityMps: figures.capacityMps,
    capacityMessagesPerHour: Number(firstMps.capacityMessages),
    halfCapacityPrice: halfCapacityPrice.toString(),
    freeMps: settings.freeMps,
    freeMessagesPerHour: Number(firstMps.freeMessages),
    firstMpsAboveFreePrice:
      firstMps.price.kind === "finite" ? firstMps.price.amount.toString() : "unbounded",
    unitYellowPercentile: settings.unitYellowPercentile,
    unitRedPercentile: settings.unitRedPercentile,
    freeAggregationTopics: settings.freeAggregationTopics,
    pricePerAggregationTopic: settings.pricePerAggregationTopic.toString(),
    aggregationTopicBytes: figures.aggregationTopicBytes,
    settingsUpdatedAt: stored.updatedAt.toISOString(),
  };
}
