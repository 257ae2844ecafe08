/**
 * The monetisation settings: validation of a change, the price that applies to the instance,
 * and the billing colour of a Unit by its load percentile.
 */
import { z } from "zod";

/** The region whose price applies when no other region is set. */
export const DEFAULT_REGION = "default";

/** The monetisation settings in their typed form. Token amounts are bigint. */
export interface BillingSettings {
  enabled: boolean;
  monthlyAllowance: bigint;
  region: string;
  /** Price K of one hour at half capacity, in tokens, per region; always has `default`. */
  regionPrices: Record<string, bigint>;
  /** Price K of this instance; overrides the region price when not null. */
  instancePrice: bigint | null;
  freeMps: number;
  unitYellowPercentile: number;
  unitRedPercentile: number;
  freeAggregationTopics: number;
  pricePerAggregationTopic: bigint;
}

const TOKENS_MESSAGE =
  "expected a whole number of tokens, 0 or more, as a number or a decimal string";

// Each branch carries the message too, because zod reports the issue of the branch whose type
// matched (such as a negative number) instead of the union's own.
const tokens = z
  .union(
    [
      z.string().regex(/^(0|[1-9][0-9]{0,17})$/, TOKENS_MESSAGE),
      z
        .number()
        .int(TOKENS_MESSAGE)
        .min(0, TOKENS_MESSAGE)
        .max(Number.MAX_SAFE_INTEGER, TOKENS_MESSAGE),
    ],
    { error: TOKENS_MESSAGE },
  )
  .transform((value) => BigInt(value));

const percentile = z
  .number({ error: "expected a percentile from 0 to 100" })
  .min(0, "expected a percentile from 0 to 100")
  .max(100, "expected a percentile from 0 to 100");

const regionName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    "expected a region name of lower-case letters, digits, - and _, such as eu-west",
  );

/** A change of the settings: every field is optional and keeps its value when omitted. */
export const billingSettingsChangeSchema = z.strictObject({
  enabled: z.boolean().optional(),
  monthlyAllowance: tokens.optional(),
  region: regionName.optional(),
  regionPrices: z.record(regionName, tokens).optional(),
  instancePrice: tokens.nullable().optional(),
  freeMps: z
    .number({ error: "expected a number of messages per second, 0 or more" })
    .min(0, "expected a number of messages per second, 0 or more")
    .optional(),
  unitYellowPercentile: percentile.optional(),
  unitRedPercentile: percentile.optional(),
  freeAggregationTopics: z
    .number()
    .int("expected a whole number of topic units, 0 or more")
    .min(0, "expected a whole number of topic units, 0 or more")
    .optional(),
  pricePerAggregationTopic: tokens.optional(),
});
export type BillingSettingsChange = z.input<typeof billingSettingsChangeSchema>;

/** Raised for a settings change that is invalid; `field` names the field at fault. */
export class InvalidBillingSettingsError extends Error {
  readonly field: string;
  /** The problem with the value, without the field name. */
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(`Invalid billing settings field ${field}: ${reason}`);
    this.name = "InvalidBillingSettingsError";
    this.field = field;
    this.reason = reason;
  }
}

/**
 * Applies `change` to `current` and returns the new settings. Raises
 * {@link InvalidBillingSettingsError} when a field is invalid, when the yellow percentile is not
 * below the red one, or when the region prices lack `default` or the instance's region.
 */
export function applySettingsChange(current: BillingSettings, change: unknown): BillingSettings {
  const parsed = billingSettingsChangeSchema.safeParse(change);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue;
    throw new InvalidBillingSettingsError(issue.path.join(".") || "body", issue.message);
  }
  const values = parsed.data;
  const next: BillingSettings = {
    ...current,
    ...Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)),
  };
  if (next.unitYellowPercentile >= next.unitRedPercentile) {
    throw new InvalidBillingSettingsError(
      "unitYellowPercentile",
      `${next.unitYellowPercentile} must be below unitRedPercentile (${next.unitRedPercentile}); lower it or raise the red percentile`,
    );
  }
  if (next.regionPrices[DEFAULT_REGION] === undefined) {
    throw new InvalidBillingSettingsError(
      "regionPrices",
      `the prices must include the region ${DEFAULT_REGION}, which applies to regions without a price`,
    );
  }
  return next;
}

/**
 * Returns the price K that applies: the instance's own price when set, else its region's price,
 * else the `default` region's price.
 */
export function effectiveHalfCapacityPrice(settings: BillingSettings): bigint {
  if (settings.instancePrice !== null) return settings.instancePrice;
  return (
    settings.regionPrices[settings.region] ?? (settings.regionPrices[DEFAULT_REGION] as bigint)
  );
}

/** Returns the names of the fields whose values differ. */
export function changedSettingsFields(before: BillingSettings, after: BillingSettings): string[] {
  const beforeJson = settingsJson(before);
  const afterJson = settingsJson(after);
  const keys = Object.keys(afterJson) as (keyof BillingSettings)[];
  return keys.filter((key) => JSON.stringify(beforeJson[key]) !== JSON.stringify(afterJson[key]));
}

/** The settings as JSON: token amounts become decimal strings. */
export type BillingSettingsJson = {
  [Field in keyof BillingSettings]: BillingSettings[Field] extends bigint
    ? string
    : BillingSettings[Field] extends bigint | null
      ? string | null
      : BillingSettings[Field] extends Record<string, bigint>
        ? Record<string, string>
        : BillingSettings[Field];
};

/** Returns the settings as JSON, with token amounts as decimal strings and regions by name. */
export function settingsJson(settings: BillingSettings): BillingSettingsJson {
  return {
    enabled: settings.enabled,
    monthlyAllowance: settings.monthlyAllowance.toString(),
    region: settings.region,
    regionPrices: Object.fromEntries(
      Object.entries(settings.regionPrices)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([region, price]) => [region, price.toString()]),
    ),
    instancePrice: settings.instancePrice?.toString() ?? null,
    freeMps: settings.freeMps,
    unitYellowPercentile: settings.unitYellowPercentile,
    unitRedPercentile: settings.unitRedPercentile,
    freeAggregationTopics: settings.freeAggregationTopics,
    pricePerAggregationTopic: settings.pricePerAggregationTopic.toString(),
  };
}

/** A Unit's colour for billing. Yellow and red Units are charged. */
export type BillingColour = "green" | "yellow" | "red";

/** Returns the colour of a Unit with load `percentile` under the settings' thresholds. */
export function billingColour(percentile: number, settings: BillingSettings): BillingColour {
  if (percentile >= settings.unitRedPercentile) return "red";
  if (percentile >= settings.unitYellowPercentile) return "yellow";
  return "green";
}
