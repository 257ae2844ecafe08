/**
 * The monetisation settings in PostgreSQL: one current row in `billing_settings` and one
 * `billing_settings_history` row per change. The configuration gives the values of the first
 * row only; later changes go through the admin API and are kept across restarts.
 */
import { desc, eq, sql } from "drizzle-orm";
import type { Config } from "../config.ts";
import type { Database, DatabaseLike } from "../db/client.ts";
import {
  type BillingSettingsHistoryRow,
  type BillingSettingsRow,
  billingSettings,
  billingSettingsHistory,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import {
  applySettingsChange,
  type BillingSettings,
  changedSettingsFields,
  DEFAULT_REGION,
  settingsJson,
} from "../money/billing/index.ts";

const logger = getNodeLogger("money", "billing");

/** Author name of the first row. */
export const CONFIG_AUTHOR = "config";

/** Returns the settings that the configuration gives to the first row. */
export function settingsFromConfig(config: Config): BillingSettings {
  const price = BigInt(config.billing.halfCapacityPrice);
  return {
    enabled: config.billing.enabled,
    monthlyAllowance: BigInt(config.billing.monthlyAllowance),
    region: config.billing.region,
    regionPrices: { [DEFAULT_REGION]: price, [config.billing.region]: price },
    instancePrice: null,
    freeMps: config.loadReport.freeMps,
    unitYellowPercentile: config.grading.unitYellowPercentile,
    unitRedPercentile: config.grading.unitRedPercentile,
    freeAggregationTopics: config.loadReport.freeAggregationTopics,
    pricePerAggregationTopic: BigInt(config.loadReport.pricePerAggregationTopic),
  };
}

function fromRow(row: BillingSettingsRow): BillingSettings {
  return {
    enabled: row.enabled,
    monthlyAllowance: row.monthlyAllowance,
    region: row.region,
    regionPrices: Object.fromEntries(
      Object.entries(row.regionPrices).map(([region, price]) => [region, BigInt(price)]),
    ),
    instancePrice: row.instancePrice,
    freeMps: row.freeMps,
    unitYellowPercentile: row.unitYellowPercentile,
    unitRedPercentile: row.unitRedPercentile,
    freeAggregationTopics: row.freeAggregationTopics,
    pricePerAggregationTopic: row.pricePerAggregationTopic,
  };
}

function toRow(settings: BillingSettings) {
  return {
    enabled: settings.enabled,
    monthlyAllowance: settings.monthlyAllowance,
    region: settings.region,
    regionPrices: settingsJson(settings).regionPrices,
    instancePrice: settings.instancePrice,
    freeMps: settings.freeMps,
    unitYellowPercentile: settings.unitYellowPercentile,
    unitRedPercentile: settings.unitRedPercentile,
    freeAggregationTopics: settings.freeAggregationTopics,
    pricePerAggregationTopic: settings.pricePerAggregationTopic,
  };
}

/** The current settings with the time and author of their last change. */
export interface StoredBillingSettings {
  settings: BillingSettings;
  updatedAt: Date;
  updatedBy: string;
}

/** Returns the current settings, creating the first row from the configuration when missing. */
export async function loadBillingSettings(
  db: Database,
  config: Config,
): Promise<StoredBillingSettings> {
  const [existing] = await db.select().from(billingSettings).where(eq(billingSettings.id, 1));
  if (existing !== undefined) return stored(existing);

  return await db.transaction(async (tx) => {
    const initial = settingsFromConfig(config);
    const [inserted] = await tx
      .insert(billingSettings)
      .values({ id: 1, ...toRow(initial), updatedBy: CONFIG_AUTHOR })
      .onConflictDoNothing()
      .returning();
    if (inserted !== undefined) {
      await tx.insert(billingSettingsHistory).values({
        changedBy: CONFIG_AUTHOR,
        changedFields: Object.keys(settingsJson(initial)),
        previous: null,
        current: settingsJson(initial),
      });
      logger.info("Created the billing settings from the configuration (monetisation {enabled})", {
        enabled: initial.enabled ? "on" : "off",
      });
      return stored(inserted);
    }
    // Another process created the row first.
    const [row] = await tx.select().from(billingSettings).where(eq(billingSettings.id, 1));
    return stored(row as BillingSettingsRow);
  });
}

function stored(row: BillingSettingsRow): StoredBillingSettings {
  return { settings: fromRow(row), updatedAt: row.updatedAt, updatedBy: row.updatedBy };
}

/**
 * Applies `change` (validated by `applySettingsChange`, which raises
 * `InvalidBillingSettingsError`) and records it in the history with `changedBy`. A change that
 * changes no value writes nothing.
 */
export async function updateBillingSettings(
  db: Database,
  config: Config,
  change: unknown,
  changedBy: string,
): Promise<StoredBillingSettings> {
  await loadBillingSettings(db, config);
  return await db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(billingSettings)
      .where(eq(billingSettings.id, 1))
      .for("update");
    const current = fromRow(row as BillingSettingsRow);
    const next = applySettingsChange(current, change);
    const changedFields = changedSettingsFields(current, next);
    if (changedFields.length === 0) return stored(row as BillingSettingsRow);

    const [updated] = await tx
      .update(billingSettings)
      .set({ ...toRow(next), updatedAt: sql`now()`, updatedBy: changedBy })
      .where(eq(billingSettings.id, 1))
      .returning();
    await tx.insert(billingSettingsHistory).values({
      changedBy,
      changedFields,
      previous: settingsJson(current),
      current: settingsJson(next),
    });
    logger.info("Billing settings changed by {changedBy}: {changedFields}", {
      changedBy,
      changedFields: changedFields.join(", "),
    });
    return stored(updated as BillingSettingsRow);
  });
}

/** Returns the latest `limit` changes, newest first. */
export async function listSettingsHistory(
  db: DatabaseLike,
  limit: number,
): Promise<BillingSettingsHistoryRow[]> {
  return await db
    .select()
    .from(billingSettingsHistory)
    .orderBy(desc(billingSettingsHistory.id))
    .limit(limit);
}
