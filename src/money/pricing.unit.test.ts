import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  cumulativeLoadPrice,
  exactCumulativeLoadPrice,
  type LoadPrice,
  type LoadPriceParameters,
  loadSlicePrice,
  splitLoadPrices,
} from "./pricing.ts";

const parametersArbitrary = fc.record({
  capacity: fc.bigInt({ min: 1n, max: 10n ** 12n }),
  halfCapacityPrice: fc.bigInt({ min: 0n, max: 10n ** 9n }),
});

/** Parameters with a load below the capacity. */
const belowCapacityArbitrary = parametersArbitrary.chain((parameters) =>
  fc.record({
    parameters: fc.constant(parameters),
    load: fc.bigInt({ min: 0n, max: parameters.capacity - 1n }),
  }),
);

function finiteAmount(price: LoadPrice): bigint {
  if (price.kind !== "finite") throw new Error("expected a finite price");
  return price.amount;
}

function exactFraction(load: bigint, parameters: LoadPriceParameters): [bigint, bigint] {
  const exact = exactCumulativeLoadPrice(load, parameters);
  if (exact.kind !== "finite") throw new Error("expected a finite exact price");
  return [exact.numerator, exact.denominator];
}

describe("cumulativeLoadPrice", () => {
  const parameters = { capacity: 1000n, halfCapacityPrice: 100n };

  it("matches the documented example", () => {
    const table: [bigint, bigint][] = [
      [0n, 0n],
      [100n, 1n],
      [250n, 11n],
      [500n, 100n],
      [750n, 900n],
      [900n, 8100n],
      [990n, 980100n],
      [999n, 99800100n],
    ];
    for (const [load, amount] of table) {
      expect(cumulativeLoadPrice(load, parameters)).toEqual({ kind: "finite", amount });
    }
  });

  it("is unbounded at and above capacity", () => {
    expect(cumulativeLoadPrice(1000n, parameters)).toEqual({ kind: "unbounded" });
    expect(cumulativeLoadPrice(5000n, parameters)).toEqual({ kind: "unbounded" });
    expect(exactCumulativeLoadPrice(1000n, parameters)).toEqual({ kind: "unbounded" });
  });

  it("is the floor of the exact price", () => {
    fc.assert(
      fc.property(belowCapacityArbitrary, ({ parameters, load }) => {
        const [numerator, denominator] = exactFraction(load, parameters);
        const amount = finiteAmount(cumulativeLoadPrice(load, parameters));
        expect(denominator).toBeGreaterThan(0n);
        expect(amount * denominator).toBeLessThanOrEqual(numerator);
        expect((amount + 1n) * denominator).toBeGreaterThan(numerator);
      }),
    );
  });

  it("never decreases with load", () => {
    fc.assert(
      fc.property(
        belowCapacityArbitrary,
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        (case_, step) => {
          const { parameters, load } = case_;
          const higher = load + (step % (parameters.capacity - load));
          const lowerAmount = finiteAmount(cumulativeLoadPrice(load, parameters));
          const higherAmount = finiteAmount(cumulativeLoadPrice(higher, parameters));
          expect(higherAmount).toBeGreaterThanOrEqual(lowerAmount);
        },
      ),
    );
  });

  it("is quadratic at low load", () => {
    // At a load share of at most 1/1000, doubling the load multiplies the exact price by
    // 4 · ((Q − L) / (Q − 2L))², which lies between 4 and 4.01.
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1000n, max: 10n ** 12n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.bigInt({ min: 1n, max: 10n ** 12n }),
        (capacity, halfCapacityPrice, seed) => {
          const parameters = { capacity, halfCapacityPrice };
          const load = 1n + (seed % (capacity / 1000n));
          const [singleNumerator, singleDenominator] = exactFraction(load, parameters);
          const [doubleNumerator, doubleDenominator] = exactFraction(2n * load, parameters);
          // ratio = double / single, compared by cross-multiplying the positive fractions.
          const ratioNumerator = doubleNumerator * singleDenominator;
          const ratioDenominator = doubleDenominator * singleNumerator;
          expect(ratioNumerator * 100n).toBeGreaterThanOrEqual(400n * ratioDenominator);
          expect(ratioNumerator * 100n).toBeLessThanOrEqual(401n * ratioDenominator);
        },
      ),
    );
  });

  it("is convex before rounding", () => {
    // C(a) + C(a + 2h) ≥ 2 · C(a + h) for the exact fractions.
    fc.assert(
      fc.property(
        parametersArbitrary,
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        (parameters, seedStart, seedWidth) => {
          fc.pre(parameters.capacity >= 3n);
          const start = seedStart % (parameters.capacity - 2n);
          const width = 1n + (seedWidth % ((parameters.capacity - 1n - start) / 2n));
          const [n0, d0] = exactFraction(start, parameters);
          const [n1, d1] = exactFraction(start + width, parameters);
          const [n2, d2] = exactFraction(start + 2n * width, parameters);
          expect(n0 * d1 * d2 + n2 * d0 * d1).toBeGreaterThanOrEqual(2n * n1 * d0 * d2);
        },
      ),
    );
  });

  it("grows without bound near capacity", () => {
    // floor(C(Q − 1)) = floor(K · (Q − 1)²), so any amount is passed by a large enough Q.
    fc.assert(
      fc.property(
        fc.bigInt({ min: 2n, max: 10n ** 12n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        (capacity, halfCapacityPrice) => {
          const parameters = { capacity, halfCapacityPrice };
          const nearCapacity = finiteAmount(cumulativeLoadPrice(capacity - 1n, parameters));
          expect(nearCapacity).toBe(halfCapacityPrice * (capacity - 1n) ** 2n);
        },
      ),
    );
  });

  it("rejects invalid parameters and loads", () => {
    expect(() => cumulativeLoadPrice(1n, { capacity: 0n, halfCapacityPrice: 1n })).toThrow(
      "Invalid capacity 0: it must be above 0",
    );
    expect(() => cumulativeLoadPrice(1n, { capacity: 10n, halfCapacityPrice: -1n })).toThrow(
      "Invalid halfCapacityPrice -1: it must be 0 or above",
    );
    expect(() => cumulativeLoadPrice(-1n, parameters)).toThrow(
      "Invalid load -1: a load must be 0 or above",
    );
  });
});

describe("loadSlicePrice", () => {
  const parameters = { capacity: 1000n, halfCapacityPrice: 100n };

  it("charges the difference of cumulative prices", () => {
    expect(loadSlicePrice(250n, 500n, parameters)).toEqual({ kind: "finite", amount: 89n });
    expect(loadSlicePrice(500n, 750n, parameters)).toEqual({ kind: "finite", amount: 800n });
  });

  it("charges nothing for an empty slice", () => {
    expect(loadSlicePrice(300n, 300n, parameters)).toEqual({ kind: "finite", amount: 0n });
    expect(loadSlicePrice(1000n, 1000n, parameters)).toEqual({ kind: "finite", amount: 0n });
  });

  it("is unbounded when reaching capacity", () => {
    expect(loadSlicePrice(0n, 1000n, parameters)).toEqual({ kind: "unbounded" });
    expect(loadSlicePrice(999n, 1001n, parameters)).toEqual({ kind: "unbounded" });
  });

  it("rejects a reversed slice", () => {
    expect(() => loadSlicePrice(5n, 4n, parameters)).toThrow(
      "Invalid load slice: from 5 is above to 4; swap them",
    );
    expect(() => loadSlicePrice(-1n, 4n, parameters)).toThrow("Invalid from -1");
    expect(() => loadSlicePrice(1n, -4n, parameters)).toThrow("Invalid to -4");
  });

  it("stays within one unit of the exact slice", () => {
    fc.assert(
      fc.property(
        belowCapacityArbitrary,
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        (case_, seed) => {
          const { parameters, load } = case_;
          const to = load + (seed % (parameters.capacity - load));
          const amount = finiteAmount(loadSlicePrice(load, to, parameters));
          const [n0, d0] = exactFraction(load, parameters);
          const [n1, d1] = exactFraction(to, parameters);
          // exact = n1/d1 − n0/d0 = (n1·d0 − n0·d1) / (d0·d1); require |amount − exact| < 1.
          const exactNumerator = n1 * d0 - n0 * d1;
          const denominator = d0 * d1;
          expect(amount).toBeGreaterThanOrEqual(0n);
          expect((amount - 1n) * denominator).toBeLessThan(exactNumerator);
          expect((amount + 1n) * denominator).toBeGreaterThan(exactNumerator);
        },
      ),
    );
  });

  it("loses at most one unit to rounding when moved up", () => {
    // The exact price of a slice of fixed width grows with its start, because C is convex.
    // Each rounded price is within 1 of its exact price, so a higher slice never costs more than
    // 1 unit less than a lower one of the same width.
    fc.assert(
      fc.property(
        parametersArbitrary,
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        (parameters, seedLow, seedHigh, seedWidth) => {
          fc.pre(parameters.capacity >= 2n);
          const width = 1n + (seedWidth % (parameters.capacity - 1n));
          const lastStart = parameters.capacity - 1n - width;
          const low = seedLow % (lastStart + 1n);
          const high = low + (seedHigh % (lastStart - low + 1n));
          const lowPrice = finiteAmount(loadSlicePrice(low, low + width, parameters));
          const highPrice = finiteAmount(loadSlicePrice(high, high + width, parameters));
          expect(highPrice).toBeGreaterThanOrEqual(lowPrice - 1n);
        },
      ),
    );
  });
});

describe("splitLoadPrices", () => {
  const parameters = { capacity: 1000n, halfCapacityPrice: 100n };

  it("adds up to the price of the total", () => {
    fc.assert(
      fc.property(
        parametersArbitrary,
        fc.array(fc.bigInt({ min: 0n, max: 10n ** 12n }), { maxLength: 20 }),
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        (parameters, seeds, seedStart) => {
          // Scale the parts so that start plus their total stays below the capacity.
          const start = seedStart % parameters.capacity;
          const room = parameters.capacity - 1n - start;
          const count = BigInt(Math.max(seeds.length, 1));
          const loads = seeds.map((seed) => seed % (room / count + 1n));
          const total = loads.reduce((sum, load) => sum + load, 0n);

          const prices = splitLoadPrices(loads, parameters, start);
          const sum = prices.reduce((acc, price) => acc + finiteAmount(price), 0n);
          expect(sum).toBe(finiteAmount(loadSlicePrice(start, start + total, parameters)));
        },
      ),
    );
  });

  it("is unbounded from the part that reaches capacity", () => {
    expect(splitLoadPrices([400n, 600n, 0n, 5n], parameters)).toEqual([
      { kind: "finite", amount: 44n },
      { kind: "unbounded" },
      { kind: "finite", amount: 0n },
      { kind: "unbounded" },
    ]);
  });

  it("starts at the given load", () => {
    expect(splitLoadPrices([250n], parameters, 500n)).toEqual([{ kind: "finite", amount: 800n }]);
    expect(splitLoadPrices([], parameters)).toEqual([]);
  });

  it("rejects a negative part or start", () => {
    expect(() => splitLoadPrices([1n, -2n], parameters)).toThrow("Invalid loads[1] -2");
    expect(() => splitLoadPrices([1n], parameters, -1n)).toThrow("Invalid start -1");
  });
});
