import { sql } from "drizzle-orm";
import { timestamp } from "drizzle-orm/pg-core";

/** Pepeunit visibility levels; only `Public` entities ever leave the instance. */
export const VISIBILITY_LEVELS = ["Public", "Internal", "Private"] as const;
export type Visibility = (typeof VISIBILITY_LEVELS)[number];

/** Where a local row came from: created through this node's API, or mirrored from Pepeunit. */
export const ROW_SOURCES = ["node", "pepeunit"] as const;
export type RowSource = (typeof ROW_SOURCES)[number];

export function createdAt() {
  return timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
}

export function updatedAt() {
  return timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();
}

/** SQL list literal for a CHECK constraint over a fixed set of strings. */
export function sqlList(values: readonly string[]) {
  return sql.raw(values.map((value) => `'${value.replaceAll("'", "''")}'`).join(", "));
}
