import { sql } from "drizzle-orm";
import {
  bigserial,
  check,
  index,
  numeric,
  pgTable,
  text,
  timestamp,
  unique,
} from "drizzle-orm/pg-core";

/**
 * Usage events pushed by the Pepeunit backend, shaped after CloudEvents: `source` + `eventId`
 * is the event's identity, so a retried delivery is stored once. `value` is the amount the event
 * meters, in the unit its `type` implies.
 */
export const usageEvents = pgTable(
  "usage_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    source: text("source").notNull(),
    /** The sender's id of the event (CloudEvents `id`), unique within `source`. */
    eventId: text("event_id").notNull(),
    type: text("type").notNull(),
    /** Whom the event is billed to or attributed to (CloudEvents `subject`), e.g. a Unit id. */
    subject: text("subject").notNull(),
    time: timestamp("time", { withTimezone: true }).notNull(),
    /** Exact decimal, so sums over many events never pick up floating-point error. */
    value: numeric("value", { precision: 38, scale: 9 }).notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    unique("usage_events_source_event_id_unique").on(table.source, table.eventId),
    check("usage_events_value_non_negative", sql`${table.value} >= 0`),
    index("usage_events_subject_time_idx").on(table.subject, table.time),
    index("usage_events_type_time_idx").on(table.type, table.time),
  ],
);

export type UsageEvent = typeof usageEvents.$inferSelect;
export type NewUsageEvent = typeof usageEvents.$inferInsert;
