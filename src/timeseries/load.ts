/**
 * Load figures (MPS per topic, UnitNode, Unit, Repo and domain) computed from the stores'
 * counter sums. The window arithmetic lives here so that both stores read exactly the same rows.
 *
 * Each window ends at the start of the minute that contains `now`, so a minute still being
 * counted never lowers a figure. The hour and day windows start exactly one hour or day earlier
 * and read minute rows. The week and month windows start at the hour boundary at or before
 * `end - length`, so they may be up to 59 minutes longer than 7 or 30 days. They read hourly
 * rollups for hours before the rollup watermark and minute rows after it, never both for one hour.
 * MPS divides by the actual window length in seconds, so it stays exact.
 */
import {
  HORIZON_SECONDS,
  type HotEntry,
  type HotSubject,
  type HotWindow,
  LOAD_HORIZONS,
  type LoadFigure,
  type LoadReport,
  type LoadSubject,
  type PerHorizon,
} from "./store.ts";
import {
  addMs,
  compareKeys,
  floorHour,
  floorMinute,
  HOUR_MS,
  MINUTE_MS,
  maxDate,
  minDate,
} from "./time.ts";
import { checkLimit, checkTime, TimeSeriesInputError } from "./validation.ts";

/** Column that a counter sum groups by; `unit_id` sums also return each Unit's Repo. */
export type CounterGroup = "topic" | "unit_node_id" | "unit_id" | "domain";

/**
 * One window split into hours read from the hourly rollups, `[hoursFrom, hoursTo)`, and minutes
 * read from minute rows, `[minutesFrom, minutesTo)`. Either part may be empty.
 */
export interface WindowPlan {
  hoursFrom: Date;
  hoursTo: Date;
  minutesFrom: Date;
  minutesTo: Date;
}

export interface CounterSum {
  key: string;
  /** Only for `unit_id` sums: the Repo id of the Unit's latest row, or null. */
  repoId: string | null;
  /** One total per plan, in plan order. */
  messages: number[];
  bytes: number[];
}

export interface CounterSumOptions {
  /** When set, return only the `limit` keys with the most messages in the first plan. */
  limit?: number;
}

/** Counter access that a store provides for computing load figures. */
export interface CounterReader {
  /**
   * First hour that the rollup job has not covered, or null before the first run. Hours before
   * it have complete rows in the hourly rollups.
   */
  readRollupWatermark(): Promise<Date | null>;
  /** Sums messages and bytes per key of `group` in each plan; keys with no rows are left out. */
  sumCounters(
    group: CounterGroup,
    plans: WindowPlan[],
    options?: CounterSumOptions,
  ): Promise<CounterSum[]>;
}

const GROUP_OF_SUBJECT: Record<Exclude<LoadSubject, "repo">, CounterGroup> = {
  topic: "topic",
  unitNode: "unit_node_id",
  unit: "unit_id",
  domain: "domain",
};

/** Plans the `[month, week, day, hour]` windows that end at the minute containing `now`. */
export function planLoadWindows(now: Date, watermark: Date | null): WindowPlan[] {
  const end = floorMinute(now);
  // Hours at or after the end's hour are never read from rollups, even when a rollup run with
  // a later clock covered them, because the window ends inside that hour.
  const rolledUpTo = watermark === null ? null : minDate(watermark, floorHour(end));

  return LOAD_HORIZONS.map((horizon) => {
    const lengthMs = HORIZON_SECONDS[horizon] * 1000;
    if (horizon === "hour" || horizon === "day") {
      const start = addMs(end, -lengthMs);
      return { hoursFrom: start, hoursTo: start, minutesFrom: start, minutesTo: end };
    }
    const start = floorHour(addMs(end, -lengthMs));
    const split = rolledUpTo === null ? start : maxDate(start, rolledUpTo);
    return { hoursFrom: start, hoursTo: split, minutesFrom: split, minutesTo: end };
  });
}

function windowSeconds(plan: WindowPlan): number {
  const startMs = Math.min(plan.hoursFrom.getTime(), plan.minutesFrom.getTime());
  return (plan.minutesTo.getTime() - startMs) / 1000;
}

function perHorizon(values: number[]): PerHorizon {
  return [values[0] ?? 0, values[1] ?? 0, values[2] ?? 0, values[3] ?? 0];
}

function toFigure(sum: CounterSum, seconds: PerHorizon): LoadFigure {
  const messages = perHorizon(sum.messages);
  return {
    key: sum.key,
    messages,
    bytes: perHorizon(sum.bytes),
    mps: perHorizon(messages.map((count, index) => count / (seconds[index] ?? 1))),
  };
}

/**
 * Averages per-Unit figures into Repo figures: for each window, the mean MPS of the Repo's
 * Units with at least one message in it. Units without a Repo id are left out.
 */
function repoFigures(units: LoadFigure[], repoOf: Map<string, string>): LoadFigure[] {
  const byRepo = new Map<string, LoadFigure[]>();
  for (const unit of units) {
    const repoId = repoOf.get(unit.key);
    if (!repoId) continue;
    const list = byRepo.get(repoId) ?? [];
    list.push(unit);
    byRepo.set(repoId, list);
  }

  const figures: LoadFigure[] = [];
  for (const [repoId, list] of byRepo) {
    const figure: LoadFigure = {
      key: repoId,
      messages: [0, 0, 0, 0],
      bytes: [0, 0, 0, 0],
      mps: [0, 0, 0, 0],
      activeUnits: [0, 0, 0, 0],
    };
    const mpsSums = [0, 0, 0, 0];
    for (const unit of list) {
      for (let index = 0; index < 4; index++) {
        figure.messages[index] = (figure.messages[index] ?? 0) + (unit.messages[index] ?? 0);
        figure.bytes[index] = (figure.bytes[index] ?? 0) + (unit.bytes[index] ?? 0);
        if ((unit.messages[index] ?? 0) > 0) {
          mpsSums[index] = (mpsSums[index] ?? 0) + (unit.mps[index] ?? 0);
          const active = figure.activeUnits as PerHorizon;
          active[index] = (active[index] ?? 0) + 1;
        }
      }
    }
    const active = figure.activeUnits as PerHorizon;
    figure.mps = perHorizon(
      mpsSums.map((sum, index) => ((active[index] ?? 0) > 0 ? sum / (active[index] ?? 1) : 0)),
    );
    figures.push(figure);
  }
  return figures.sort((a, b) => compareKeys(a.key, b.key));
}

/** Computes the load report of `subject` at `now` from `reader`. */
export async function computeLoadReport(
  reader: CounterReader,
  subject: LoadSubject,
  now: Date,
): Promise<LoadReport> {
  checkTime("now", now);
  if (!(subject in GROUP_OF_SUBJECT) && subject !== "repo") {
    throw new TimeSeriesInputError("subject", `unknown load subject ${String(subject)}`);
  }
  const plans = planLoadWindows(now, await reader.readRollupWatermark());
  const seconds = perHorizon(plans.map(windowSeconds));
  const group = subject === "repo" ? "unit_id" : GROUP_OF_SUBJECT[subject];
  const sums = await reader.sumCounters(group, plans);
  const figures = sums
    .map((sum) => toFigure(sum, seconds))
    .sort((a, b) => compareKeys(a.key, b.key));

  const report = {
    subject,
    windowEnd: floorMinute(now),
    windowSeconds: seconds,
  };
  if (subject !== "repo") return { ...report, figures };

  const repoOf = new Map<string, string>();
  for (const sum of sums) if (sum.repoId) repoOf.set(sum.key, sum.repoId);
  return { ...report, figures: repoFigures(figures, repoOf) };
}

/**
 * Returns the `limit` topics or Units with the highest MPS over the last complete minute or
 * the last hour before `now`, read from minute rows. Ties are ordered by key.
 */
export async function computeHotList(
  reader: CounterReader,
  subject: HotSubject,
  window: HotWindow,
  now: Date,
  limit: number,
): Promise<HotEntry[]> {
  checkTime("now", now);
  checkLimit(limit);
  if (subject !== "topic" && subject !== "unit") {
    throw new TimeSeriesInputError("subject", "expected topic or unit");
  }
  if (window !== "minute" && window !== "hour") {
    throw new TimeSeriesInputError("window", "expected minute or hour");
  }
  const end = floorMinute(now);
  const lengthMs = window === "minute" ? MINUTE_MS : HOUR_MS;
  const start = addMs(end, -lengthMs);
  const plan = { hoursFrom: start, hoursTo: start, minutesFrom: start, minutesTo: end };
  const sums = await reader.sumCounters(subject === "topic" ? "topic" : "unit_id", [plan], {
    limit,
  });
  return sums
    .map((sum) => {
      const messages = sum.messages[0] ?? 0;
      return { key: sum.key, messages, mps: messages / (lengthMs / 1000) };
    })
    .sort((a, b) => b.messages - a.messages || compareKeys(a.key, b.key))
    .slice(0, limit);
}
