import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  check,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { units } from "./catalogue.ts";
import { createdAt, sqlList } from "./common.ts";
import { users } from "./users.ts";

/**
 * Billing: the monetisation settings and their history, hourly and daily billing runs, the
 * billing state of each Unit and the notices sent to users. `src/billing/` and
 * `src/money/billing/` write these tables, and docs/billing.md describes the rules.
 */

/**
 * The current monetisation settings: exactly one row, with id 1. The first reader creates it from
 * the `PU_NODE_*` configuration, and the admin API changes it.
 */
export const billingSettings = pgTable(
  "billing_settings",
  {
    id: integer("id").primaryKey().default(1),
    enabled: boolean("enabled").notNull(),
    /** Free tokens every user gets on the first day of each UTC month. */
    monthlyAllowance: bigint("monthly_allowance", { mode: "bigint" }).notNull(),
    /** The region whose price applies to this instance. */
    region: text("region").notNull(),
    /** Price K of one hour at half capacity, in tokens, per region; always has `default`. */
    regionPrices: jsonb("region_prices").$type<Record<string, string>>().notNull(),
    /** Price K of this instance; overrides the region price when set. */
    instancePrice: bigint("instance_price", { mode: "bigint" }),
    /** Mean MPS of one Unit over an hour that is never charged. */
    freeMps: doublePrecision("free_mps").notNull(),
    /** Percentile of Unit load from which a Unit is yellow, and so charged. */
    unitYellowPercentile: doublePrecision("unit_yellow_percentile").notNull(),
    /** Percentile of Unit load from which a Unit is red. */
    unitRedPercentile: doublePrecision("unit_red_percentile").notNull(),
    /** Aggregation topic units that one user keeps free of charge. */
    freeAggregationTopics: integer("free_aggregation_topics").notNull(),
    /** Price in tokens of one aggregation topic unit above the free ones for one day. */
    pricePerAggregationTopic: bigint("price_per_aggregation_topic", { mode: "bigint" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    /** Author of the last change: `config` for the first row, else the admin API caller. */
    updatedBy: text("updated_by").notNull(),
  },
  (table) => [
    check("billing_settings_single_row", sql`${table.id} = 1`),
    check("billing_settings_allowance_non_negative", sql`${table.monthlyAllowance} >= 0`),
    check(
      "billing_settings_instance_price_non_negative",
      sql`${table.instancePrice} is null or ${table.instancePrice} >= 0`,
    ),
    check(
      "billing_settings_percentiles",
      sql`0 <= ${table.unitYellowPercentile} and ${table.unitYellowPercentile} < ${table.unitRedPercentile} and ${table.unitRedPercentile} <= 100`,
    ),
  ],
);

/** One change of the settings: the full settings before and after, and who made it. */
export const billingSettingsHistory = pgTable(
  "billing_settings_history",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    changedAt: timestamp("changed_at", { withTimezone: true }).notNull().defaultNow(),
    changedBy: text("changed_by").notNull(),
    /** Names of the fields whose value changed. */
    changedFields: jsonb("changed_fields").$type<string[]>().notNull(),
    /** Null for the first row, created from the configuration. */
    previous: jsonb("previous").$type<Record<string, unknown>>(),
    current: jsonb("current").$type<Record<string, unknown>>().notNull(),
  },
  (table) => [index("billing_settings_history_changed_at_idx").on(table.changedAt)],
);

/** `usage`: the hourly charge of Unit load; `aggregation`: the daily charge of topics. */
export const BILLING_RUN_KINDS = ["usage", "aggregation"] as const;
export type BillingRunKind = (typeof BILLING_RUN_KINDS)[number];

/** `skipped`: monetisation was off, so the period is settled without charges. */
export const BILLING_RUN_STATUSES = ["running", "completed", "skipped", "failed"] as const;
export type BillingRunStatus = (typeof BILLING_RUN_STATUSES)[number];

/** `schedule`: the worker's job; `manual`: `POST /api/v1/billing/run`. */
export const BILLING_TRIGGERS = ["schedule", "manual"] as const;
export type BillingTrigger = (typeof BILLING_TRIGGERS)[number];

/**
 * One attempt to bill one period: a UTC hour of Unit load, or a UTC day of aggregation topics.
 * Every attempt keeps its row. Charges are idempotent per Unit and hour (or user and day), so a
 * rerun charges only what an earlier attempt missed.
 */
export const billingRuns = pgTable(
  "billing_runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    kind: text("kind", { enum: BILLING_RUN_KINDS }).notNull(),
    /** Start of the billed UTC hour, or of the UTC day for `aggregation`. */
    period: timestamp("period", { withTimezone: true }).notNull(),
    trigger: text("trigger", { enum: BILLING_TRIGGERS }).notNull(),
    status: text("status", { enum: BILLING_RUN_STATUSES }).notNull(),
    /** Units (or users) charged by this attempt; charges of earlier attempts are not counted. */
    charged: integer("charged").notNull().default(0),
    /** Tokens charged by this attempt. */
    total: bigint("total", { mode: "bigint" }).notNull().default(sql`0`),
    failures: integer("failures").notNull().default(0),
    /** Settings used, Units stopped, and each failure with its Unit or user and error. */
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
    error: text("error"),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (table) => [
    check("billing_runs_kind_check", sql`${table.kind} in (${sqlList(BILLING_RUN_KINDS)})`),
    check("billing_runs_status_check", sql`${table.status} in (${sqlList(BILLING_RUN_STATUSES)})`),
    check("billing_runs_trigger_check", sql`${table.trigger} in (${sqlList(BILLING_TRIGGERS)})`),
    index("billing_runs_kind_period_idx").on(table.kind, table.period, table.startedAt),
  ],
);

export const UNIT_BILLING_STATES = ["active", "stopped"] as const;
export type UnitBillingStateKind = (typeof UNIT_BILLING_STATES)[number];

/**
 * Why a Unit was stopped: its owner's balance could not pay a charge, or its load reached the
 * instance's capacity, where the price is unbounded.
 */
export const UNIT_STOP_REASONS = ["balance_exhausted", "load_at_capacity"] as const;
export type UnitStopReason = (typeof UNIT_STOP_REASONS)[number];

/** The billing state of a Unit. A Unit without a row is active. */
export const unitBillingState = pgTable(
  "unit_billing_state",
  {
    unitId: uuid("unit_id")
      .primaryKey()
      .references(() => units.id, { onDelete: "cascade" }),
    state: text("state", { enum: UNIT_BILLING_STATES }).notNull(),
    since: timestamp("since", { withTimezone: true }).notNull().defaultNow(),
    /** Null while active. */
    reason: text("reason", { enum: UNIT_STOP_REASONS }),
    /** The charge that stopped the Unit, such as `usage:<unit>:<hour>`. */
    chargeKey: text("charge_key"),
    /** Whether the broker applied the last change; false means the job applies it again. */
    brokerApplied: boolean("broker_applied").notNull().default(false),
    brokerError: text("broker_error"),
  },
  (table) => [
    check("unit_billing_state_check", sql`${table.state} in (${sqlList(UNIT_BILLING_STATES)})`),
    check(
      "unit_billing_state_reason_check",
      sql`(${table.state} = 'stopped') = (${table.reason} is not null) and (${table.reason} is null or ${table.reason} in (${sqlList(UNIT_STOP_REASONS)}))`,
    ),
    index("unit_billing_state_state_idx").on(table.state),
  ],
);

/**
 * Messages to users in Russian and English, such as a stopped Unit. `key` makes each notice
 * unique, so a retried run notifies once.
 */
export const userNotices = pgTable(
  "user_notices",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    key: text("key").notNull().unique("user_notices_key_unique"),
    kind: text("kind").notNull(),
    textRu: text("text_ru").notNull(),
    textEn: text("text_en").notNull(),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
    /** When a sender (such as the Telegram bot) delivered it; null until then. */
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
  },
  (table) => [index("user_notices_user_created_idx").on(table.userId, table.createdAt)],
);

export type BillingSettingsRow = typeof billingSettings.$inferSelect;
export type BillingSettingsHistoryRow = typeof billingSettingsHistory.$inferSelect;
export type BillingRunRow = typeof billingRuns.$inferSelect;
export type UnitBillingStateRow = typeof unitBillingState.$inferSelect;
export type UserNoticeRow = typeof userNotices.$inferSelect;
