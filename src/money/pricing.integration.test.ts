/**
 * The price curve checked against PostgreSQL's exact `numeric` arithmetic. For random instances
 * and loads, floor(K · L² / (Q − L)²) computed by the server must equal the bigint prices that
 * billing posts. The Unit hour charge must equal the server's slice above the free load.
 */

import { sql } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { aggregationDayCharge, messagesPerHour, unitHourCharge } from "./billing/charges.ts";
import {
  cumulativeLoadPrice,
  exactCumulativeLoadPrice,
  type LoadPrice,
  loadSlicePrice,
  splitLoadPrices,
} from "./pricing.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "pricing_oracle");
});

afterAll(async () => {
  await database.drop();
});

interface Case {
  price: bigint;
  capacity: bigint;
  load: bigint;
}

/** floor(C(L)) of every case, computed by PostgreSQL; null where L ≥ Q. */
async function serverPrices(cases: readonly Case[]): Promise<(bigint | null)[]> {
  const column = (pick: (item: Case) => bigint) => `{${cases.map(pick).join(",")}}`;
  const result = await database.db.execute<{ price: string | null }>(sql`
    select case when l >= q then null else floor(k * l * l / ((q - l) * (q - l)))::text end as price
    from unnest(${column((item) => item.price)}::numeric[], ${column((item) => item.capacity)}::numeric[],
                ${column((item) => item.load)}::numeric[]) with ordinality as t(k, q, l, n)
    order by n`);
  return result.rows.map((row) => (row.price === null ? null : BigInt(row.price)));
}

function amountOf(price: LoadPrice): bigint | null {
  return price.kind === "finite" ? price.amount : null;
}

const caseArbitrary = fc
  .record({
    price: fc.bigInt({ min: 0n, max: 10n ** 12n }),
    capacity: fc.bigInt({ min: 1n, max: 10n ** 9n }),
    share: fc.double({ min: 0, max: 1.2, noNaN: true }),
  })
  .map(({ price, capacity, share }) => ({
    price,
    capacity,
    load: BigInt(Math.floor(Number(capacity) * share)),
  }));

describe("price curve against PostgreSQL", () => {
  it("equals the server's floor of C(L)", async () => {
    const cases = fc.sample(caseArbitrary, { numRuns: 2000, seed: 20261205 });
    cases.push(
      { price: 100n, capacity: 3600n, load: 1800n },
      { price: 100n, capacity: 3600n, load: 3600n },
      { price: 100n, capacity: 3600n, load: 0n },
    );

    const expected = await serverPrices(cases);

    cases.forEach((item, index) => {
      const parameters = { capacity: item.capacity, halfCapacityPrice: item.price };
      expect(
        amountOf(cumulativeLoadPrice(item.load, parameters)),
        JSON.stringify(item, (_, v) => (typeof v === "bigint" ? String(v) : v)),
      ).toBe(expected[index]);
      const exact = exactCumulativeLoadPrice(item.load, parameters);
      if (exact.kind === "finite") {
        expect(exact.numerator / exact.denominator).toBe(expected[index]);
      }
    });
  });

  it("prices slices and splits as server differences", async () => {
    const parameters = { capacity: 3600n, halfCapacityPrice: 100n };
    const points = [0n, 360n, 900n, 1800n, 2700n, 3599n, 3600n];
    const prices = await serverPrices(
      points.map((load) => ({ price: 100n, capacity: 3600n, load })),
    );
    const server = new Map(points.map((load, index) => [load, prices[index] ?? null]));

    for (let from = 0; from < points.length; from++) {
      for (let to = from; to < points.length; to++) {
        const low = points[from] as bigint;
        const high = points[to] as bigint;
        const upper = server.get(high) as bigint | null;
        const lower = server.get(low) as bigint;
        let expected: bigint | null = null;
        if (low === high) expected = 0n;
        else if (upper !== null) expected = upper - lower;
        expect(amountOf(loadSlicePrice(low, high, parameters)), `${low}..${high}`).toBe(expected);
      }
    }

    // Parts charged one after another cost the server's differences between their bounds.
    const bounds = [0n, 360n, 900n, 1800n];
    const expectedParts = bounds
      .slice(1)
      .map(
        (high, index) =>
          (server.get(high) as bigint) - (server.get(bounds[index] as bigint) as bigint),
      );
    expect(splitLoadPrices([360n, 540n, 900n], parameters).map(amountOf)).toEqual(expectedParts);
    expect(splitLoadPrices([1800n, 1800n], parameters).map(amountOf)).toEqual([
      server.get(1800n),
      null,
    ]);
  });

  it("charges a Unit hour as the server's slice above the free load", async () => {
    const settings = { capacityMps: 1, freeMps: 0.1, halfCapacityPrice: 100n };
    const loads = [0n, 360n, 361n, 1800n, 3599n, 3600n, 7200n];
    const ends = await serverPrices(loads.map((load) => ({ price: 100n, capacity: 3600n, load })));
    const [free] = await serverPrices([{ price: 100n, capacity: 3600n, load: 360n }]);

    loads.forEach((messages, index) => {
      const end = ends[index] ?? null;
      let expected: bigint | null = null;
      if (messages <= 360n) expected = 0n;
      else if (end !== null) expected = end - (free as bigint);
      const charge = unitHourCharge(messages, settings);
      expect(amountOf(charge.price), `${messages} messages`).toBe(expected);
      expect(charge.freeMessages).toBe(messagesPerHour(0.1));
      expect(charge.capacityMessages).toBe(3600n);
    });
  });
});

describe("price arguments", () => {
  it("rejects values outside the curve", () => {
    const valid = { capacity: 10n, halfCapacityPrice: 1n };
    const rejected: [() => unknown, RegExp][] = [
      [() => cumulativeLoadPrice(1n, { capacity: 0n, halfCapacityPrice: 1n }), /capacity 0/],
      [
        () => cumulativeLoadPrice(1n, { capacity: 10n, halfCapacityPrice: -1n }),
        /halfCapacityPrice -1/,
      ],
      [() => cumulativeLoadPrice(-1n, valid), /load -1/],
      [() => loadSlicePrice(5n, 4n, valid), /from 5 is above to 4/],
      [() => splitLoadPrices([1n], valid, -2n), /start -2/],
      [() => splitLoadPrices([1n, -3n], valid), /loads\[1\] -3/],
      [() => messagesPerHour(Number.NaN), /Invalid rate NaN/],
      [() => messagesPerHour(-1), /Invalid rate -1/],
      [
        () => unitHourCharge(-1n, { capacityMps: 1, freeMps: 0, halfCapacityPrice: 1n }),
        /message count -1/,
      ],
      [
        () => aggregationDayCharge(-1, { freeAggregationTopics: 0, pricePerAggregationTopic: 1n }),
        /topic unit count -1/,
      ],
    ];
    for (const [call, message] of rejected) {
      expect(call).toThrow(RangeError);
      expect(call).toThrow(message);
    }
  });
});
