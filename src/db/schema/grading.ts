import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { sqlList } from "./common.ts";

/**
 * Hourly grading: the instance status and each active Unit's colour. `src/grading/` writes these
 * tables, and docs/grading.md describes the rules.
 */

/** Instance status and Unit colour, from most room to least. */
export const GRADES = ["green", "yellow", "red"] as const;
export type Grade = (typeof GRADES)[number];

export const GRADING_RUN_STATUSES = ["running", "completed", "failed"] as const;
export type GradingRunStatus = (typeof GRADING_RUN_STATUSES)[number];

/** `schedule`: the worker's hourly job; `manual`: `POST /api/v1/grading/run`. */
export const GRADING_TRIGGERS = ["schedule", "manual"] as const;
export type GradingTrigger = (typeof GRADING_TRIGGERS)[number];

/**
 * One attempt to grade one UTC hour. Every attempt keeps its row, so reruns stay visible. The
 * grades of an hour are those of its latest completed run.
 */
export const gradingRuns = pgTable(
  "grading_runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** Start of the graded UTC hour. */
    hour: timestamp("hour", { withTimezone: true }).notNull(),
    trigger: text("trigger", { enum: GRADING_TRIGGERS }).notNull(),
    status: text("status", { enum: GRADING_RUN_STATUSES }).notNull(),
    /** Null until the run completes. */
    instanceStatus: text("instance_status", { enum: GRADES }),
    /** The settings the run used: capacity, thresholds, percentiles. */
    parameters: jsonb("parameters").$type<Record<string, unknown>>().notNull(),
    /** The measurements and results; null until the run completes. */
    figures: jsonb("figures").$type<Record<string, unknown>>(),
    error: text("error"),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (table) => [
    check("grading_runs_trigger_check", sql`${table.trigger} in (${sqlList(GRADING_TRIGGERS)})`),
    check("grading_runs_status_check", sql`${table.status} in (${sqlList(GRADING_RUN_STATUSES)})`),
    check(
      "grading_runs_instance_status_check",
      sql`${table.instanceStatus} is null or ${table.instanceStatus} in (${sqlList(GRADES)})`,
    ),
    check(
      "grading_runs_completed_has_status",
      sql`(${table.status} = 'completed') = (${table.instanceStatus} is not null)`,
    ),
    check("grading_runs_hour_whole", sql`date_trunc('hour', ${table.hour}) = ${table.hour}`),
    index("grading_runs_hour_idx").on(table.hour, table.startedAt),
    index("grading_runs_status_finished_idx").on(table.status, table.finishedAt),
  ],
);

/**
 * The colour of one Unit in one graded hour, from the hour's latest completed run. A rerun of the
 * hour replaces all rows of that hour. Units without messages in the hour get no row.
 */
export const unitGrades = pgTable(
  "unit_grades",
  {
    hour: timestamp("hour", { withTimezone: true }).notNull(),
    /** No foreign key: grades outlive Units that are deleted later. */
    unitId: uuid("unit_id").notNull(),
    runId: uuid("run_id")
      .notNull()
      .references(() => gradingRuns.id, { onDelete: "restrict" }),
    colour: text("colour", { enum: GRADES }).notNull(),
    /** Share of the hour's active Units with a lower mean MPS, 0 to 100. */
    percentile: doublePrecision("percentile").notNull(),
    /** Mean messages per second over the hour's twelve five-minute samples. */
    meanMps: doublePrecision("mean_mps").notNull(),
    /** Highest five-minute MPS of the hour. */
    peakMps: doublePrecision("peak_mps").notNull(),
    messages: bigint("messages", { mode: "number" }).notNull(),
    bytes: bigint("bytes", { mode: "number" }).notNull(),
    /** Five-minute samples with at least one message, 1 to 12. */
    activeSamples: integer("active_samples").notNull(),
    /** Among the hour's hot Units: the busiest by mean MPS. */
    hot: boolean("hot").notNull(),
  },
  (table) => [
    primaryKey({ name: "unit_grades_pkey", columns: [table.hour, table.unitId] }),
    check("unit_grades_colour_check", sql`${table.colour} in (${sqlList(GRADES)})`),
    index("unit_grades_unit_hour_idx").on(table.unitId, table.hour),
    index("unit_grades_run_idx").on(table.runId),
  ],
);

export type GradingRunRow = typeof gradingRuns.$inferSelect;
export type UnitGradeRow = typeof unitGrades.$inferSelect;
