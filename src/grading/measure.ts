/**
 * Reads the measurements of one graded hour from the time-series store: messages per
 * five-minute sample for the whole instance and for each Unit, and the node state minutes.
 * Everything comes from minute rows, which the store keeps for 48 hours.
 */
import type { WindowPlan } from "../timeseries/load.ts";
import { MINUTE_RETENTION_HOURS, type TimeSeriesStore } from "../timeseries/store.ts";
import { addMs, floorHour, HOUR_MS } from "../timeseries/time.ts";
import {
  type InstanceSampleInput,
  SAMPLE_SECONDS,
  SAMPLES_PER_HOUR,
  type UnitLoad,
} from "./grade.ts";

export interface HourMeasurements {
  hour: Date;
  instance: InstanceSampleInput[];
  units: UnitLoad[];
}

/** Raised for an hour that cannot be graded; the message names the hour and the fix. */
export class GradingInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GradingInputError";
  }
}

/** Returns the start of the last complete UTC hour before `now`. */
export function lastCompleteHour(now: Date): Date {
  return addMs(floorHour(now), -HOUR_MS);
}

/**
 * Checks that `hour` starts a whole UTC hour that has ended by `now` and whose minute rows are
 * still kept; throws {@link GradingInputError} otherwise.
 */
export function checkGradableHour(hour: Date, now: Date): void {
  const text = Number.isNaN(hour.getTime()) ? String(hour) : hour.toISOString();
  if (Number.isNaN(hour.getTime()) || hour.getTime() % HOUR_MS !== 0) {
    throw new GradingInputError(
      `Invalid hour ${text}: expected the start of a UTC hour such as 2027-01-01T10:00:00Z`,
    );
  }
  const latest = lastCompleteHour(now);
  if (hour.getTime() > latest.getTime()) {
    throw new GradingInputError(
      `Hour ${text} has not ended yet; the latest hour that can be graded is ${latest.toISOString()}`,
    );
  }
  // Minute rows are kept 48 hours back from the current hour. One hour less leaves a margin for
  // a retention run that starts while the grading run reads.
  const earliest = addMs(floorHour(now), -(MINUTE_RETENTION_HOURS - 1) * HOUR_MS);
  if (hour.getTime() < earliest.getTime()) {
    throw new GradingInputError(
      `Hour ${text} is too old: its minute rows may be gone; grade an hour from ${earliest.toISOString()} on`,
    );
  }
}

/** Returns the twelve five-minute windows of `hour`, read from minute rows only. */
export function planSamples(hour: Date): WindowPlan[] {
  const plans: WindowPlan[] = [];
  for (let index = 0; index < SAMPLES_PER_HOUR; index++) {
    const from = addMs(hour, index * SAMPLE_SECONDS * 1000);
    const to = addMs(from, SAMPLE_SECONDS * 1000);
    plans.push({ hoursFrom: from, hoursTo: from, minutesFrom: from, minutesTo: to });
  }
  return plans;
}

export async function measureHour(store: TimeSeriesStore, hour: Date): Promise<HourMeasurements> {
  const plans = planSamples(hour);
  // Every counter row has a domain (empty for topics without one), so summing per domain covers
  // every message the tap counted, local and foreign.
  const [domainSums, unitSums, nodeStates] = await Promise.all([
    store.sumCounters("domain", plans),
    store.sumCounters("unit_id", plans),
    store.nodeStateHistory(hour, addMs(hour, HOUR_MS)),
  ]);

  const instance = plans.map((plan, index) => ({
    from: plan.minutesFrom,
    messages: domainSums.reduce((sum, row) => sum + (row.messages[index] ?? 0), 0),
    bytes: domainSums.reduce((sum, row) => sum + (row.bytes[index] ?? 0), 0),
    nodeStates: nodeStates.filter(
      (state) =>
        state.at.getTime() >= plan.minutesFrom.getTime() &&
        state.at.getTime() < plan.minutesTo.getTime(),
    ),
  }));
  const units = unitSums.map((row) => ({
    unitId: row.key,
    messages: plans.map((_, index) => row.messages[index] ?? 0),
    bytes: plans.map((_, index) => row.bytes[index] ?? 0),
  }));
  return { hour, instance, units };
}
