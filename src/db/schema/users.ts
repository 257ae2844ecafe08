import { sql } from "drizzle-orm";
import { check, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, ROW_SOURCES, sqlList, updatedAt } from "./common.ts";

export const USER_ROLES = ["User", "Admin"] as const;
export const USER_STATUSES = ["Unverified", "Verified", "Blocked"] as const;

/** Local users: Pepeunit accounts mirrored by the importer, or created through the node's API. */
export const users = pgTable(
  "users",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    login: text("login").notNull().unique("users_login_unique"),
    role: text("role", { enum: USER_ROLES }).notNull().default("User"),
    status: text("status", { enum: USER_STATUSES }).notNull().default("Unverified"),
    source: text("source", { enum: ROW_SOURCES }).notNull().default("node"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check("users_role_check", sql`${table.role} in (${sqlList(USER_ROLES)})`),
    check("users_status_check", sql`${table.status} in (${sqlList(USER_STATUSES)})`),
    check("users_source_check", sql`${table.source} in (${sqlList(ROW_SOURCES)})`),
  ],
);

export type User = typeof users.$inferSelect;
export type NewUser = typeof users.$inferInsert;
