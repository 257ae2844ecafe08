/**
 * Grading runs: measure an hour, grade it and store the result. Every run keeps its own row in
 * `grading_runs`. A rerun of an hour replaces that hour's `unit_grades` in one transaction, so
 * the grades of an hour are always those of its latest completed run.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import type { GradingConfig } from "../config.ts";
import type { Database } from "../db/client.ts";
import {
  type GradingRunRow,
  type GradingTrigger,
  gradingRuns,
  type UnitGradeRow,
  unitGrades,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import type { TimeSeriesStore } from "../timeseries/store.ts";
import {
  gradeInstance,
  gradeUnits,
  type InstanceGrade,
  SAMPLE_SECONDS,
  type UnitGrade,
} from "./grade.ts";
import { checkGradableHour, measureHour } from "./measure.ts";

const logger = getNodeLogger("grading");

/** Serializes the write step of runs, so two runs of one hour never interleave their grades. */
const GRADING_WRITE_LOCK_KEY = 0x50554752_4144;
const INSERT_CHUNK = 1000;

export interface GradingDependencies {
  db: Database;
  store: TimeSeriesStore;
  settings: GradingConfig;
}

export interface GradingRequest {
  hour: Date;
  trigger: GradingTrigger;
  /** Clock for checking that the hour has ended; the current time when omitted. */
  now?: Date;
}

/** The figures a completed run stores in `grading_runs.figures`. */
export interface GradingFigures {
  sampleSeconds: number;
  instance: {
    meanMps: number;
    peakMps: number;
    messages: number;
    bytes: number;
    yellowSamples: number;
    redSamples: number;
  };
  samples: {
    from: string;
    mps: number;
    loadPercent: number;
    cpuPercent: number | null;
    memoryPercent: number | null;
    diskPercent: number | null;
    nodeStateMinutes: number;
    pressurePercent: number;
    level: string;
  }[];
  units: { active: number; green: number; yellow: number; red: number };
  hotUnits: { unitId: string; meanMps: number; peakMps: number; colour: string }[];
}

function figuresOf(instance: InstanceGrade, grades: UnitGrade[]): GradingFigures {
  const count = (colour: string) => grades.filter((grade) => grade.colour === colour).length;
  return {
    sampleSeconds: SAMPLE_SECONDS,
    instance: {
      meanMps: instance.meanMps,
      peakMps: instance.peakMps,
      messages: instance.messages,
      bytes: instance.bytes,
      yellowSamples: instance.yellowSamples,
      redSamples: instance.redSamples,
    },
    samples: instance.samples.map((sample) => ({
      from: sample.from.toISOString(),
      mps: sample.mps,
      loadPercent: sample.loadPercent,
      cpuPercent: sample.cpuPercent,
      memoryPercent: sample.memoryPercent,
      diskPercent: sample.diskPercent,
      nodeStateMinutes: sample.nodeStateMinutes,
      pressurePercent: sample.pressurePercent,
      level: sample.level,
    })),
    units: {
      active: grades.length,
      green: count("green"),
      yellow: count("yellow"),
      red: count("red"),
    },
    hotUnits: grades
      .filter((grade) => grade.hot)
      .sort((a, b) => b.messages - a.messages || (a.unitId < b.unitId ? -1 : 1))
      .map((grade) => ({
        unitId: grade.unitId,
        meanMps: grade.meanMps,
        peakMps: grade.peakMps,
        colour: grade.colour,
      })),
  };
}

/**
 * Grades `request.hour` and stores the run. Throws {@link GradingInputError} for an hour that
 * cannot be graded, before any row is written. A failure after the run row exists marks the run
 * `failed` with the error, leaves the hour's earlier grades in place, and is thrown again.
 */
export async function runGrading(
  dependencies: GradingDependencies,
  request: GradingRequest,
): Promise<GradingRunRow> {
  const { db, store, settings } = dependencies;
  checkGradableHour(request.hour, request.now ?? new Date());

  const [started] = await db
    .insert(gradingRuns)
    .values({
      hour: request.hour,
      trigger: request.trigger,
      status: "running",
      parameters: { ...settings },
    })
    .returning();
  if (!started) throw new Error(`Grading run of ${request.hour.toISOString()} was not stored`);
  logger.info("Grading hour {hour} (run {runId}, {trigger})", {
    hour: request.hour.toISOString(),
    runId: started.id,
    trigger: request.trigger,
  });

  try {
    const measured = await measureHour(store, request.hour);
    const instance = gradeInstance(measured.instance, settings);
    const grades = gradeUnits(measured.units, settings);
    const completed = await storeGrades(db, started, instance, grades);
    logger.info("Graded hour {hour}: {status}, {units} active Units (run {runId})", {
      hour: request.hour.toISOString(),
      status: instance.status,
      units: grades.length,
      runId: started.id,
    });
    return completed;
  } catch (error) {
    logger.error("Grading run {runId} of hour {hour} failed: {error}", {
      runId: started.id,
      hour: request.hour.toISOString(),
      error,
    });
    await db
      .update(gradingRuns)
      .set({ status: "failed", error: String(error), finishedAt: sql`clock_timestamp()` })
      .where(eq(gradingRuns.id, started.id))
      .catch((updateError: unknown) => {
        // The run row stays `running`; the original error is the one thrown.
        logger.error("Marking grading run {runId} failed did not work: {error}", {
          runId: started.id,
          error: updateError,
        });
      });
    throw error;
  }
}

async function storeGrades(
  db: Database,
  run: GradingRunRow,
  instance: InstanceGrade,
  grades: UnitGrade[],
): Promise<GradingRunRow> {
  return await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${GRADING_WRITE_LOCK_KEY})`);
    await tx.delete(unitGrades).where(eq(unitGrades.hour, run.hour));
    for (let start = 0; start < grades.length; start += INSERT_CHUNK) {
      await tx.insert(unitGrades).values(
        grades.slice(start, start + INSERT_CHUNK).map((grade) => ({
          hour: run.hour,
          unitId: grade.unitId,
          runId: run.id,
          colour: grade.colour,
          percentile: grade.percentile,
          meanMps: grade.meanMps,
          peakMps: grade.peakMps,
          messages: grade.messages,
          bytes: grade.bytes,
          activeSamples: grade.activeSamples,
          hot: grade.hot,
        })),
      );
    }
    // clock_timestamp() is taken after the lock, so the run that replaced the grades last also
    // finished last.
    const [completed] = await tx
      .update(gradingRuns)
      .set({
        status: "completed",
        instanceStatus: instance.status,
        figures: figuresOf(instance, grades) as unknown as Record<string, unknown>,
        finishedAt: sql`clock_timestamp()`,
      })
      .where(eq(gradingRuns.id, run.id))
      .returning();
    if (!completed) throw new Error(`Grading run ${run.id} disappeared before it completed`);
    return completed;
  });
}

/** Returns the latest completed run of the latest graded hour, or undefined before any. */
export async function latestCompletedRun(db: Database): Promise<GradingRunRow | undefined> {
  const [row] = await db
    .select()
    .from(gradingRuns)
    .where(eq(gradingRuns.status, "completed"))
    .orderBy(desc(gradingRuns.hour), desc(gradingRuns.finishedAt))
    .limit(1);
  return row;
}

/** Returns the run of `hour` that started last, whatever its status. */
export async function latestRunOfHour(
  db: Database,
  hour: Date,
): Promise<GradingRunRow | undefined> {
  const [row] = await db
    .select()
    .from(gradingRuns)
    .where(eq(gradingRuns.hour, hour))
    .orderBy(desc(gradingRuns.startedAt))
    .limit(1);
  return row;
}

/** Returns whether `hour` has a completed run. */
export async function hasCompletedRun(db: Database, hour: Date): Promise<boolean> {
  const [row] = await db
    .select({ id: gradingRuns.id })
    .from(gradingRuns)
    .where(and(eq(gradingRuns.hour, hour), eq(gradingRuns.status, "completed")))
    .limit(1);
  return row !== undefined;
}

export async function getGradingRun(db: Database, id: string): Promise<GradingRunRow | undefined> {
  const [row] = await db.select().from(gradingRuns).where(eq(gradingRuns.id, id));
  return row;
}

/** Returns the grade of `unitId` in `hour`, or undefined when the Unit had no messages then. */
export async function unitGradeAt(
  db: Database,
  unitId: string,
  hour: Date,
): Promise<UnitGradeRow | undefined> {
  const [row] = await db
    .select()
    .from(unitGrades)
    .where(and(eq(unitGrades.unitId, unitId), eq(unitGrades.hour, hour)));
  return row;
}

/** Returns the grades of the `limit` latest graded hours of `unitId`, newest first. */
export async function unitGradeHistory(
  db: Database,
  unitId: string,
  limit: number,
): Promise<UnitGradeRow[]> {
  return await db
    .select()
    .from(unitGrades)
    .where(eq(unitGrades.unitId, unitId))
    .orderBy(desc(unitGrades.hour))
    .limit(limit);
}
