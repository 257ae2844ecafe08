/**
 * Tables of the PostgreSQL time-series store (`src/timeseries/postgres`). The ClickHouse store
 * keeps the same tables under the same names (`migrations/clickhouse`).
 *
 * Unit, UnitNode and Repo ids carry no foreign keys: counters outlive deleted Units and cover
 * foreign topics whose ids this node does not have in its catalogue.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import type { UnitNodeSpace, UserSpace } from "../../metering/state/aggregation-space.ts";
import { sqlList } from "./common.ts";

const DOMAIN_KINDS = ["local", "foreign"] as const;
const CHANNELS = ["mqtt", "graphql", "rest", "telegram", "other"] as const;
const ERROR_SOURCES = ["node", "backend"] as const;
const ERROR_LEVELS = ["error", "critical"] as const;
/**
 * Pepeunit DataPipe tables, as `DATAPIPE_TABLES` in `src/metering/state/aggregation-space.ts`.
 * Importing that list here would make an import cycle, because that module imports the schema.
 */
const DATAPIPE_TABLES = ["n_last_entry", "window_entry", "aggregation_entry"] as const;

function counterColumns() {
  return {
    topic: text("topic").notNull(),
    domain: text("domain").notNull(),
    domainKind: text("domain_kind", { enum: DOMAIN_KINDS }).notNull(),
    unitNodeId: uuid("unit_node_id"),
    unitId: uuid("unit_id"),
    repoId: uuid("repo_id"),
    messages: bigint("messages", { mode: "number" }).notNull(),
    bytes: bigint("bytes", { mode: "number" }).notNull(),
  };
}

/** Messages and bytes per MQTT topic and UTC minute, added up over all taps and batches. */
export const topicCounterMinutes = pgTable(
  "topic_counter_minutes",
  {
    minute: timestamp("minute", { withTimezone: true }).notNull(),
    ...counterColumns(),
  },
  (table) => [
    primaryKey({ name: "topic_counter_minutes_pk", columns: [table.minute, table.topic] }),
    check(
      "topic_counter_minutes_domain_kind_check",
      sql`${table.domainKind} in (${sqlList(DOMAIN_KINDS)})`,
    ),
  ],
);

/** Hourly rollups of `topic_counter_minutes`, rewritten by each rollup run. */
export const topicCounterHours = pgTable(
  "topic_counter_hours",
  {
    hour: timestamp("hour", { withTimezone: true }).notNull(),
    ...counterColumns(),
  },
  (table) => [
    primaryKey({ name: "topic_counter_hours_pk", columns: [table.hour, table.topic] }),
    check(
      "topic_counter_hours_domain_kind_check",
      sql`${table.domainKind} in (${sqlList(DOMAIN_KINDS)})`,
    ),
  ],
);

/**
 * Ledger of written counter batches: a batch id found here is a retry and is not counted again.
 * Rows are kept as long as the minute rows of their newest minute.
 */
export const counterBatches = pgTable(
  "counter_batches",
  {
    batchId: text("batch_id").primaryKey(),
    tapId: text("tap_id").notNull(),
    newestMinute: timestamp("newest_minute", { withTimezone: true }).notNull(),
    rows: bigint("rows", { mode: "number" }).notNull(),
    writtenAt: timestamp("written_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("counter_batches_newest_minute_idx").on(table.newestMinute)],
);

/** Progress of scheduled time-series jobs; the `rollup` row contains the first hour not rolled up. */
export const timeseriesJobState = pgTable("timeseries_job_state", {
  job: text("job").primaryKey(),
  through: timestamp("through", { withTimezone: true }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** One node state sample per UTC minute: metric name to value. */
export const nodeStateMinutes = pgTable(
  "node_state_minutes",
  {
    minute: timestamp("minute", { withTimezone: true }).primaryKey(),
    values: jsonb("values").$type<Record<string, number>>().notNull(),
  },
  (table) => [
    check("node_state_minutes_values_check", sql`jsonb_typeof(${table.values}) = 'object'`),
  ],
);

/** Error and critical log record frequencies per UTC minute, source and fingerprint. */
export const errorCountMinutes = pgTable(
  "error_count_minutes",
  {
    minute: timestamp("minute", { withTimezone: true }).notNull(),
    source: text("source", { enum: ERROR_SOURCES }).notNull(),
    fingerprint: text("fingerprint").notNull(),
    level: text("level", { enum: ERROR_LEVELS }).notNull(),
    category: text("category").notNull(),
    sample: text("sample").notNull(),
    count: bigint("count", { mode: "number" }).notNull(),
  },
  (table) => [
    primaryKey({
      name: "error_count_minutes_pk",
      columns: [table.minute, table.source, table.fingerprint],
    }),
    check("error_count_minutes_source_check", sql`${table.source} in (${sqlList(ERROR_SOURCES)})`),
    check("error_count_minutes_level_check", sql`${table.level} in (${sqlList(ERROR_LEVELS)})`),
  ],
);

/** Requests per channel, UTC minute and measuring source; a newer row replaces the older. */
export const channelCountMinutes = pgTable(
  "channel_count_minutes",
  {
    minute: timestamp("minute", { withTimezone: true }).notNull(),
    channel: text("channel", { enum: CHANNELS }).notNull(),
    source: text("source").notNull(),
    count: bigint("count", { mode: "number" }).notNull(),
  },
  (table) => [
    primaryKey({
      name: "channel_count_minutes_pk",
      columns: [table.minute, table.channel, table.source],
    }),
    check("channel_count_minutes_channel_check", sql`${table.channel} in (${sqlList(CHANNELS)})`),
  ],
);

/**
 * Messages in, out and dropped per MQTT topic, UTC minute and source, as EMQX's topic metrics
 * count them. They measure the same traffic as `topic_counter_minutes`, so nothing adds the two.
 */
export const emqxTopicCounterMinutes = pgTable(
  "emqx_topic_counter_minutes",
  {
    minute: timestamp("minute", { withTimezone: true }).notNull(),
    source: text("source").notNull(),
    topic: text("topic").notNull(),
    domain: text("domain").notNull(),
    domainKind: text("domain_kind", { enum: DOMAIN_KINDS }).notNull(),
    unitNodeId: uuid("unit_node_id"),
    unitId: uuid("unit_id"),
    repoId: uuid("repo_id"),
    messagesIn: bigint("messages_in", { mode: "number" }).notNull(),
    messagesOut: bigint("messages_out", { mode: "number" }).notNull(),
    messagesDropped: bigint("messages_dropped", { mode: "number" }).notNull(),
  },
  (table) => [
    primaryKey({
      name: "emqx_topic_counter_minutes_pk",
      columns: [table.minute, table.source, table.topic],
    }),
    check(
      "emqx_topic_counter_minutes_domain_kind_check",
      sql`${table.domainKind} in (${sqlList(DOMAIN_KINDS)})`,
    ),
  ],
);

/**
 * Ledger of written batches of EMQX topic counts, apart from the tap's `counter_batches` so that
 * the two never collide on a batch id. Rows are kept as long as the minute rows of their newest
 * minute.
 */
export const emqxCounterBatches = pgTable(
  "emqx_counter_batches",
  {
    batchId: text("batch_id").primaryKey(),
    source: text("source").notNull(),
    newestMinute: timestamp("newest_minute", { withTimezone: true }).notNull(),
    rows: bigint("rows", { mode: "number" }).notNull(),
    writtenAt: timestamp("written_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("emqx_counter_batches_newest_minute_idx").on(table.newestMinute)],
);

/**
 * One snapshot per UTC minute of the space that Pepeunit's DataPipe aggregations take, per
 * UnitNode and table and per user, in the order the snapshot listed them.
 */
export const aggregationSpaceMinutes = pgTable(
  "aggregation_space_minutes",
  {
    minute: timestamp("minute", { withTimezone: true }).primaryKey(),
    unitNodes: jsonb("unit_nodes").$type<UnitNodeSpace[]>().notNull(),
    users: jsonb("users").$type<UserSpace[]>().notNull(),
    missingTables: text("missing_tables").array().notNull(),
  },
  (table) => [
    check(
      "aggregation_space_minutes_unit_nodes_check",
      sql`jsonb_typeof(${table.unitNodes}) = 'array'`,
    ),
    check("aggregation_space_minutes_users_check", sql`jsonb_typeof(${table.users}) = 'array'`),
    check(
      "aggregation_space_minutes_missing_tables_check",
      sql`${table.missingTables} <@ array[${sqlList(DATAPIPE_TABLES)}]::text[]`,
    ),
  ],
);

export type TopicCounterMinute = typeof topicCounterMinutes.$inferSelect;
export type NewTopicCounterMinute = typeof topicCounterMinutes.$inferInsert;
export type CounterBatchRecord = typeof counterBatches.$inferSelect;
export type NodeStateMinute = typeof nodeStateMinutes.$inferSelect;
