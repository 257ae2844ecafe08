import { sql } from "drizzle-orm";
import { bigint, check, index, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { createdAt } from "./common.ts";
import { gradingRuns } from "./grading.ts";

/**
 * Signed load reports and the tokens that scrapers read them with. `src/reports/` writes these
 * tables, and docs/load-report.md describes the report.
 */

/** Scopes a report token may carry. `load_report:read` allows `GET /api/v1/load_limit`. */
export const REPORT_TOKEN_SCOPES = ["load_report:read"] as const;
export type ReportTokenScope = (typeof REPORT_TOKEN_SCOPES)[number];

/**
 * A token that the administrator created for a scraper. Only the SHA-256 of the token is kept,
 * so the token itself is shown once, when it is created.
 */
export const reportTokens = pgTable(
  "report_tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** The administrator's label, such as the scraper's host. */
    name: text("name").notNull(),
    /** Lower-case hex SHA-256 of the token text. */
    tokenSha256: text("token_sha256").notNull().unique("report_tokens_token_sha256_unique"),
    scopes: text("scopes").array().notNull(),
    createdAt: createdAt(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (table) => [
    check("report_tokens_name_not_empty", sql`${table.name} <> ''`),
    check("report_tokens_sha256_hex", sql`${table.tokenSha256} ~ '^[0-9a-f]{64}$'`),
  ],
);

/**
 * The chain of signed load reports. Each row is the compact JWS of one report, whose payload
 * contains `sequence` and the SHA-256 of the previous row's JWS. The trigger in
 * `migrations/postgres-repeatable/load-reports.sql` rejects UPDATE and DELETE.
 */
export const loadReports = pgTable(
  "load_reports",
  {
    /** 1 for the first report, then one more for each next report, without gaps. */
    sequence: bigint("sequence", { mode: "number" }).primaryKey(),
    /** The grading run whose figures the report carries; null when no run had completed. */
    gradingRunId: uuid("grading_run_id").references(() => gradingRuns.id, {
      onDelete: "restrict",
    }),
    jws: text("jws").notNull(),
    /** Lower-case hex SHA-256 of `jws`. */
    jwsSha256: text("jws_sha256").notNull().unique("load_reports_jws_sha256_unique"),
    /** `jws_sha256` of the report before; null only for sequence 1. */
    previousSha256: text("previous_sha256"),
    createdAt: createdAt(),
  },
  (table) => [
    check("load_reports_sequence_positive", sql`${table.sequence} >= 1`),
    check(
      "load_reports_previous_present",
      sql`(${table.sequence} = 1) = (${table.previousSha256} is null)`,
    ),
    index("load_reports_created_at_idx").on(table.createdAt),
  ],
);

export type ReportTokenRow = typeof reportTokens.$inferSelect;
export type LoadReportRow = typeof loadReports.$inferSelect;
