/**
 * Turning readings of monotonic counters into deltas. EMQX counters start again from zero when
 * the broker restarts or a topic's metrics are reset, so a decrease means a reset, and the new
 * value is then the delta (the counts since the reset).
 */

/** Returns the increase of `current` over `previous`, reading a decrease as a reset. */
export function counterDelta(previous: number, current: number): number {
  return current >= previous ? current - previous : current;
}

/**
 * Start of the UTC minute that contains the midpoint of the interval between two readings. A
 * delta between two readings is counted in that minute, so readings taken just after each
 * minute boundary put each minute's messages into the minute they were sent in.
 */
export function minuteOfInterval(from: Date, to: Date): Date {
  const midpoint = from.getTime() + (to.getTime() - from.getTime()) / 2;
  return new Date(Math.floor(midpoint / 60_000) * 60_000);
}
