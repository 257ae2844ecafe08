import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { buildNodeInfo } from "../../federation/nodeinfo.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { loadConfig } from "../config.ts";
import { gradingRuns, unitGrades } from "../db/schema/index.ts";
import { PostgresTimeSeriesStore } from "../timeseries/postgres/store.ts";
import type { TopicCounterRow } from "../timeseries/types.ts";
import { gradeDueHour } from "./job.ts";
import { GradingInputError } from "./measure.ts";
import { type GradingFigures, latestCompletedRun, runGrading } from "./run.ts";

const HOUR = new Date("2027-01-01T10:00:00Z");
const AFTER = new Date("2027-01-01T11:05:00Z");
const UNITS = Array.from(
  { length: 5 },
  (_, index) => `00000000-0000-4000-8000-00000000000${index}`,
);
const config = loadConfig({
  PU_NODE_ENV: "test",
  PU_NODE_ORIGIN: "https://node.example.com",
  PU_NODE_CAPACITY_MPS: "10",
});
const settings = config.grading;

let database: TestDatabase;
let store: PostgresTimeSeriesStore;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "grading_run");
  store = new PostgresTimeSeriesStore(database.db);
  await store.migrate();
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

beforeEach(async () => {
  await database.pool.query(
    "truncate unit_grades, load_reports, grading_runs, topic_counter_minutes, counter_batches, node_state_minutes cascade",
  );
});

function row(minuteOffset: number, unitIndex: number, messages: number): TopicCounterRow {
  const unitId = UNITS[unitIndex] ?? null;
  return {
    minute: new Date(HOUR.getTime() + minuteOffset * 60_000),
    topic: `unit.example.com/${unitId}/pepeunit`,
    domain: "unit.example.com",
    domainKind: "local",
    unitNodeId: null,
    unitId,
    repoId: null,
    messages,
    bytes: messages * 10,
  };
}

async function writeRows(rows: TopicCounterRow[]): Promise<void> {
  await store.writeCounterBatch({ batchId: randomUUID(), tapId: "test", rows });
}

/** Unit i sends (i + 1) · 60 messages in each minute of the hour: 1 to 5 MPS, 15 MPS in all. */
async function writeSteadyHour(): Promise<void> {
  const rows: TopicCounterRow[] = [];
  for (let minute = 0; minute < 60; minute++) {
    for (let index = 0; index < UNITS.length; index++)
      rows.push(row(minute, index, (index + 1) * 60));
  }
  await writeRows(rows);
}

describe("runGrading", () => {
  it("grades an hour from twelve samples", async () => {
    await writeSteadyHour();
    const run = await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );

    expect(run.status).toBe("completed");
    expect(run.instanceStatus).toBe("red");
    const figures = run.figures as unknown as GradingFigures;
    expect(figures.samples).toHaveLength(12);
    expect(figures.instance.meanMps).toBe(15);
    expect(figures.instance.redSamples).toBe(12);
    // Percentiles 0, 20, 40, 60 and 80: three below 50, one from 50 to 80, one from 80.
    expect(figures.units).toEqual({ active: 5, green: 3, yellow: 1, red: 1 });
    expect(figures.hotUnits.map((hot) => hot.unitId)).toEqual(UNITS.slice().reverse());

    const grades = await database.db.select().from(unitGrades).where(eq(unitGrades.hour, HOUR));
    expect(grades).toHaveLength(5);
    const busiest = grades.find((grade) => grade.unitId === UNITS[4]);
    expect(busiest?.colour).toBe("red");
    expect(busiest?.percentile).toBe(80);
    expect(busiest?.meanMps).toBe(5);
    expect(busiest?.activeSamples).toBe(12);
  });

  it("stays green under a short spike", async () => {
    // Two five-minute samples at 12 MPS against a capacity of 10, the rest at 1 MPS.
    const rows: TopicCounterRow[] = [];
    for (let minute = 0; minute < 60; minute++) rows.push(row(minute, 0, minute < 10 ? 720 : 60));
    await writeRows(rows);
    const run = await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );
    const figures = run.figures as unknown as GradingFigures;
    expect(figures.instance.redSamples).toBe(2);
    expect(run.instanceStatus).toBe("green");
  });

  it("reads resource pressure from node state", async () => {
    await writeRows([row(0, 0, 60)]);
    for (let minute = 0; minute < 15; minute++) {
      await store.writeNodeState({
        at: new Date(HOUR.getTime() + minute * 60_000),
        values: { host_cpu_percent: 93 },
      });
    }
    const run = await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );
    const figures = run.figures as unknown as GradingFigures;
    expect(figures.samples[0]?.cpuPercent).toBe(93);
    expect(figures.samples[0]?.nodeStateMinutes).toBe(5);
    expect(figures.samples[3]?.cpuPercent).toBeNull();
    expect(run.instanceStatus).toBe("yellow");
  });

  it("replaces an hour's grades on rerun", async () => {
    await writeSteadyHour();
    const first = await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "schedule", now: AFTER },
    );
    // A late batch for one more Unit arrives, and the rerun counts it.
    await writeRows([
      row(30, 0, 1),
      {
        ...row(30, 0, 6),
        topic: "unit.example.com/00000000-0000-4000-8000-0000000000ff/pepeunit",
        unitId: "00000000-0000-4000-8000-0000000000ff",
      },
    ]);
    const second = await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );

    const grades = await database.db.select().from(unitGrades).where(eq(unitGrades.hour, HOUR));
    expect(grades).toHaveLength(6);
    expect(new Set(grades.map((grade) => grade.runId))).toEqual(new Set([second.id]));
    const runs = await database.db.select().from(gradingRuns);
    expect(runs.map((run) => run.id).sort()).toEqual([first.id, second.id].sort());
    expect((await latestCompletedRun(database.db))?.id).toBe(second.id);
  });

  it("rejects an hour that has not ended", async () => {
    const attempt = runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: new Date("2027-01-01T10:59:00Z") },
    );
    await expect(attempt).rejects.toThrow(GradingInputError);
    await expect(attempt).rejects.toThrow(/has not ended yet/);
    expect(await database.db.select().from(gradingRuns)).toHaveLength(0);
  });

  it("rejects a partial or old hour", async () => {
    const partial = runGrading(
      { db: database.db, store, settings },
      { hour: new Date("2027-01-01T10:30:00Z"), trigger: "manual", now: AFTER },
    );
    await expect(partial).rejects.toThrow(/start of a UTC hour/);
    const old = runGrading(
      { db: database.db, store, settings },
      { hour: new Date("2026-12-29T10:00:00Z"), trigger: "manual", now: AFTER },
    );
    await expect(old).rejects.toThrow(/too old/);
  });

  it("records a failed run and keeps earlier grades", async () => {
    await writeSteadyHour();
    await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );
    const broken = Object.create(store) as PostgresTimeSeriesStore;
    broken.sumCounters = async () => {
      throw new Error("store unavailable");
    };
    await expect(
      runGrading(
        { db: database.db, store: broken, settings },
        { hour: HOUR, trigger: "manual", now: AFTER },
      ),
    ).rejects.toThrow("store unavailable");

    const failed = await database.db
      .select()
      .from(gradingRuns)
      .where(eq(gradingRuns.status, "failed"));
    expect(failed).toHaveLength(1);
    expect(failed[0]?.error).toContain("store unavailable");
    expect(failed[0]?.finishedAt).not.toBeNull();
    expect(await database.db.select().from(unitGrades)).toHaveLength(5);
  });
});

describe("gradeDueHour", () => {
  it("waits two minutes after the hour", async () => {
    const run = await gradeDueHour({
      db: database.db,
      store,
      settings,
      clock: () => new Date("2027-01-01T11:01:00Z"),
    });
    expect(run).toBeUndefined();
    expect(await database.db.select().from(gradingRuns)).toHaveLength(0);
  });

  it("grades the last hour once", async () => {
    await writeSteadyHour();
    const options = { db: database.db, store, settings, clock: () => AFTER };
    const first = await gradeDueHour(options);
    const second = await gradeDueHour(options);
    expect(first?.hour).toEqual(HOUR);
    expect(first?.trigger).toBe("schedule");
    expect(first?.status).toBe("completed");
    expect(second).toBeUndefined();
  });
});

describe("gradeDueHour retries", () => {
  it("waits ten minutes after a failed run", async () => {
    const broken = Object.create(store) as PostgresTimeSeriesStore;
    broken.sumCounters = async () => {
      throw new Error("store unavailable");
    };
    const failing = { db: database.db, store: broken, settings, clock: () => AFTER };
    await expect(gradeDueHour(failing)).rejects.toThrow("store unavailable");

    // startedAt comes from the database clock; pin it to the test's clock.
    await database.db.update(gradingRuns).set({ startedAt: AFTER });

    const soon = new Date(AFTER.getTime() + 60_000);
    const skipped = await gradeDueHour({ ...failing, store, clock: () => soon });
    expect(skipped).toBeUndefined();

    const later = new Date(AFTER.getTime() + 11 * 60_000);
    const retried = await gradeDueHour({ db: database.db, store, settings, clock: () => later });
    expect(retried?.status).toBe("completed");
  });
});

describe("NodeInfo status", () => {
  it("is null before grading", async () => {
    const info = await buildNodeInfo(database.db, config);
    const pepeunit = (info.metadata as { pepeunit: { status: unknown } }).pepeunit;
    expect(pepeunit.status).toBeNull();
  });

  it("publishes the latest status", async () => {
    await writeSteadyHour();
    await runGrading(
      { db: database.db, store, settings },
      { hour: HOUR, trigger: "manual", now: AFTER },
    );
    const info = await buildNodeInfo(database.db, config);
    const pepeunit = (info.metadata as { pepeunit: Record<string, unknown> }).pepeunit;
    expect(pepeunit.status).toEqual({ instance: "red", hour: HOUR.toISOString(), capacityMps: 10 });
    expect(pepeunit.domain).toBe("node.example.com");
  });
});
