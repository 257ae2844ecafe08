/**
 * Rollup ranges and retention cutoffs, shared by both stores so that they remove and recompute
 * exactly the same hours.
 */
import {
  ERROR_RETENTION_HOURS,
  LONG_RETENTION_DAYS,
  MINUTE_RETENTION_HOURS,
  type RetentionResult,
  ROLLUP_LOOKBACK_HOURS,
} from "./store.ts";
import { addMs, DAY_MS, floorDay, floorHour, HOUR_MS, maxDate, minDate } from "./time.ts";

/** Name of the rollup job in the job state table. */
export const ROLLUP_JOB = "rollup";

/**
 * Returns the hours `[from, to)` that a rollup run at `now` recomputes. `to` is the start of the
 * current hour. `from` is the previous watermark minus the lookback, or the hour of the oldest
 * kept minute row on the first run (`to` when there is none).
 */
export function planRollup(
  now: Date,
  watermark: Date | null,
  oldestMinute: Date | null,
): { from: Date; to: Date } {
  const to = floorHour(now);
  if (watermark !== null) {
    return { from: addMs(minDate(watermark, to), -ROLLUP_LOOKBACK_HOURS * HOUR_MS), to };
  }
  if (oldestMinute === null) return { from: to, to };
  return { from: minDate(floorHour(oldestMinute), to), to };
}

/** Returns the watermark after a rollup run that covered up to `to`. It never moves back. */
export function nextWatermark(watermark: Date | null, to: Date): Date {
  return watermark === null ? to : maxDate(watermark, to);
}

/**
 * Returns the retention cutoffs at `now`. Minute rows older than 48 hours before the current
 * hour are due, but only once they are rolled up and outside the rollup lookback, so no hour
 * loses minutes that a later rollup run would still read. Before the first rollup run, no
 * minute row is due (`minutesBefore` is null). EMQX's topic counts have no rollup, so they are
 * due 48 hours before the current hour whether or not the rollup job ran.
 */
export function retentionCutoffs(now: Date, watermark: Date | null): RetentionResult {
  const hour = floorHour(now);
  const minutesBefore =
    watermark === null
      ? null
      : minDate(
          addMs(hour, -MINUTE_RETENTION_HOURS * HOUR_MS),
          addMs(watermark, -ROLLUP_LOOKBACK_HOURS * HOUR_MS),
        );
  const longBefore = addMs(floorDay(now), -LONG_RETENTION_DAYS * DAY_MS);
  return {
    minutesBefore,
    hoursBefore: longBefore,
    errorsBefore: addMs(hour, -ERROR_RETENTION_HOURS * HOUR_MS),
    emqxMinutesBefore: addMs(hour, -MINUTE_RETENTION_HOURS * HOUR_MS),
    longBefore,
  };
}
