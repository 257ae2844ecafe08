/**
 * The hourly price of load, progressive in the load's share of the instance's capacity.
 *
 * With load L and capacity Q in the same integer unit (for example messages per hour), the price
 * of the load from 0 up to L is
 *
 *     C(L) = K · L² / (Q − L)²        for 0 ≤ L < Q
 *
 * where K is the price of half the capacity (C(Q/2) = K). C is quadratic at low load
 * (C ≈ K · (L/Q)²), increasing, convex, and grows without bound as L approaches Q. At L ≥ Q the
 * price is `unbounded`. The marginal price is C′(L) = 2K · L · Q / (Q − L)³.
 *
 * Rounding happens in one place: the charged cumulative price is floor(C(L)), computed exactly
 * with bigint. A slice of load [a, b] costs floor(C(b)) − floor(C(a)), so slices charged one
 * after another add up to exactly the price of their total. docs/pricing.md has the proofs and
 * a worked example.
 */

/** The price parameters of one instance. */
export interface LoadPriceParameters {
  /** Load at which the price becomes unbounded, in the unit of the loads. Must be above 0. */
  capacity: bigint;
  /** Price in minor units of one hour of load at half the capacity. Must not be negative. */
  halfCapacityPrice: bigint;
}

/** A price in minor units, or `unbounded` for a load at or above the capacity. */
export type LoadPrice = { kind: "finite"; amount: bigint } | { kind: "unbounded" };

/** The exact rational price C(L) before rounding, for checks and documentation. */
export type ExactLoadPrice =
  | { kind: "finite"; numerator: bigint; denominator: bigint }
  | { kind: "unbounded" };

const UNBOUNDED = { kind: "unbounded" } as const;

/** Returns the exact C(L) = K · L² / (Q − L)² as a fraction with a positive denominator. */
export function exactCumulativeLoadPrice(
  load: bigint,
  parameters: LoadPriceParameters,
): ExactLoadPrice {
  checkParameters(parameters);
  checkLoad("load", load);
  if (load >= parameters.capacity) return UNBOUNDED;

  const headroom = parameters.capacity - load;
  return {
    kind: "finite",
    numerator: parameters.halfCapacityPrice * load * load,
    denominator: headroom * headroom,
  };
}

/** Returns the charged price of the load from 0 up to `load`: floor(C(load)). */
export function cumulativeLoadPrice(load: bigint, parameters: LoadPriceParameters): LoadPrice {
  const exact = exactCumulativeLoadPrice(load, parameters);
  if (exact.kind === "unbounded") return UNBOUNDED;
  // Both parts are non-negative, so bigint division, which truncates, is the floor.
  return { kind: "finite", amount: exact.numerator / exact.denominator };
}

/**
 * Returns the price of the load from `from` up to `to`: floor(C(to)) − floor(C(from)). An empty
 * slice (`from` equal to `to`) costs 0 wherever it lies, and any other slice that reaches the
 * capacity is unbounded.
 */
export function loadSlicePrice(
  from: bigint,
  to: bigint,
  parameters: LoadPriceParameters,
): LoadPrice {
  checkParameters(parameters);
  checkLoad("from", from);
  checkLoad("to", to);
  if (from > to) {
    throw new RangeError(`Invalid load slice: from ${from} is above to ${to}; swap them`);
  }
  if (from === to) return { kind: "finite", amount: 0n };

  const upper = cumulativeLoadPrice(to, parameters);
  if (upper.kind === "unbounded") return UNBOUNDED;
  const lower = cumulativeLoadPrice(from, parameters) as { kind: "finite"; amount: bigint };
  return { kind: "finite", amount: upper.amount - lower.amount };
}

/**
 * Prices loads that are charged one after another, starting at `start`: part i covers the
 * slice from `start` plus the parts before it, to that plus its own load. When every price is
 * finite, they sum to exactly `loadSlicePrice(start, start + total, parameters)`.
 */
export function splitLoadPrices(
  loads: readonly bigint[],
  parameters: LoadPriceParameters,
  start = 0n,
): LoadPrice[] {
  checkLoad("start", start);
  let position = start;
  return loads.map((load, index) => {
    checkLoad(`loads[${index}]`, load);
    const price = loadSlicePrice(position, position + load, parameters);
    position += load;
    return price;
  });
}

function checkParameters(parameters: LoadPriceParameters): void {
  if (parameters.capacity <= 0n) {
    throw new RangeError(`Invalid capacity ${parameters.capacity}: it must be above 0`);
  }
  if (parameters.halfCapacityPrice < 0n) {
    throw new RangeError(
      `Invalid halfCapacityPrice ${parameters.halfCapacityPrice}: it must be 0 or above`,
    );
  }
}

function checkLoad(name: string, load: bigint): void {
  if (load < 0n) {
    throw new RangeError(`Invalid ${name} ${load}: a load must be 0 or above`);
  }
}
