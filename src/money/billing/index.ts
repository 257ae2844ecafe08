export {
  type AllowanceOutcome,
  allowancePostingKey,
  grantMonthlyAllowance,
  monthKey,
} from "./allowance.ts";
export {
  type AggregationPriceSettings,
  aggregationDayCharge,
  messagesPerHour,
  type UsageCharge,
  type UsagePriceSettings,
  unitHourCharge,
} from "./charges.ts";
export {
  type FaucetGrant,
  type FaucetRequest,
  faucetPostingKey,
  grantFaucetTokens,
} from "./faucet.ts";
export {
  applySettingsChange,
  type BillingColour,
  type BillingSettings,
  type BillingSettingsChange,
  type BillingSettingsJson,
  billingColour,
  billingSettingsChangeSchema,
  changedSettingsFields,
  DEFAULT_REGION,
  effectiveHalfCapacityPrice,
  InvalidBillingSettingsError,
  settingsJson,
} from "./settings.ts";
export {
  aggregationPostingKey,
  type ChargeOutcome,
  type ChargeRequest,
  chargeUser,
  usagePostingKey,
  userBalance,
} from "./usage.ts";
