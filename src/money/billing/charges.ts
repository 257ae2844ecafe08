/**
 * The amounts of billing: the hourly charge of one Unit's load and the daily charge of one
 * user's aggregation topics. Loads are counted in messages per hour, so every amount is exact in
 * integers. docs/billing.md describes the rules.
 */
import { type LoadPrice, loadSlicePrice } from "../pricing.ts";

const SECONDS_PER_HOUR = 3600;

/** The price settings of Unit load in one hour. */
export interface UsagePriceSettings {
  /** Messages per second, summed over all topics, that the instance is sized for. */
  capacityMps: number;
  /** Mean MPS of one Unit over an hour that is never charged. */
  freeMps: number;
  /** Price K in tokens of one hour at half the capacity. */
  halfCapacityPrice: bigint;
}

/** The charge of one Unit's hour, with the loads it was computed from in messages per hour. */
export interface UsageCharge {
  /** The price of the slice from `freeMessages` to `messages`, or `unbounded` at capacity. */
  price: LoadPrice;
  messages: bigint;
  freeMessages: bigint;
  capacityMessages: bigint;
}

/** Converts a rate in messages per second to whole messages per hour, rounding down. */
export function messagesPerHour(mps: number): bigint {
  if (!Number.isFinite(mps) || mps < 0) {
    throw new RangeError(
      `Invalid rate ${mps}: expected a finite number of messages per second, 0 or more`,
    );
  }
  return BigInt(Math.floor(mps * SECONDS_PER_HOUR));
}

/**
 * Prices a Unit's `messages` in one hour: the slice of its own load above the free load, on the
 * curve of the whole instance's capacity, so C(L) = K · L² / (Q − L)² with L and Q in messages per
 * hour. A Unit at or below the free load pays 0. A Unit whose load reaches the capacity has an
 * `unbounded` price.
 */
export function unitHourCharge(messages: bigint, settings: UsagePriceSettings): UsageCharge {
  if (messages < 0n) {
    throw new RangeError(`Invalid message count ${messages}: it must be 0 or above`);
  }
  const capacityMessages = messagesPerHour(settings.capacityMps);
  const freeMessages = messagesPerHour(settings.freeMps);
  const parameters = { capacity: capacityMessages, halfCapacityPrice: settings.halfCapacityPrice };
  const price =
    messages <= freeMessages
      ? ({ kind: "finite", amount: 0n } as const)
      : loadSlicePrice(freeMessages, messages, parameters);
  return { price, messages, freeMessages, capacityMessages };
}

/** The aggregation topic policy: free topic units per user and the daily price of each more. */
export interface AggregationPriceSettings {
  freeAggregationTopics: number;
  pricePerAggregationTopic: bigint;
}

/** Returns the daily charge of a user's `topicUnits`: the units above the free ones × price. */
export function aggregationDayCharge(
  topicUnits: number,
  settings: AggregationPriceSettings,
): bigint {
  if (!Number.isSafeInteger(topicUnits) || topicUnits < 0) {
    throw new RangeError(
      `Invalid topic unit count ${topicUnits}: expected a whole number, 0 or more`,
    );
  }
  const charged = Math.max(0, topicUnits - settings.freeAggregationTopics);
  return BigInt(charged) * settings.pricePerAggregationTopic;
}
