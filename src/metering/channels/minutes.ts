/** Spreading counts over UTC minutes, exactly: the parts always add up to the whole. */

const MINUTE_MS = 60_000;

/**
 * Splits `count` over the UTC minutes that the interval `(fromMs, toMs]` overlaps, in proportion
 * to the overlap, and returns minute start (ms) → whole count. Rounding follows the largest
 * remainder method, so the parts sum to `count` exactly. An empty interval puts everything into
 * the minute of `toMs`.
 */
export function spreadOverMinutes(
  count: number,
  fromMs: number,
  toMs: number,
): Map<number, number> {
  const result = new Map<number, number>();
  if (count === 0) return result;
  if (toMs <= fromMs) {
    result.set(toMs - (toMs % MINUTE_MS), count);
    return result;
  }

  const shares: Array<{ minute: number; exact: number }> = [];
  for (let minute = fromMs - (fromMs % MINUTE_MS); minute < toMs; minute += MINUTE_MS) {
    const overlap = Math.min(toMs, minute + MINUTE_MS) - Math.max(fromMs, minute);
    if (overlap > 0) shares.push({ minute, exact: (count * overlap) / (toMs - fromMs) });
  }

  let assigned = 0;
  for (const share of shares) {
    const whole = Math.floor(share.exact);
    result.set(share.minute, whole);
    assigned += whole;
  }
  const byRemainder = [...shares].sort(
    (a, b) =>
      b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)) || a.minute - b.minute,
  );
  for (let index = 0; assigned < count; index = (index + 1) % byRemainder.length) {
    const share = byRemainder[index];
    if (share === undefined) break;
    result.set(share.minute, (result.get(share.minute) ?? 0) + 1);
    assigned += 1;
  }
  return result;
}
