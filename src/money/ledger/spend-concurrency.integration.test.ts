/**
 * spendTokens from many connections at once; needs the PostgreSQL server, since PGlite serves
 * one connection.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  accountBalance,
  createFundedUser as createFundedLedgerUser,
} from "../../../test/ledger-support.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { createDatabase, createPool, type Database } from "../../db/client.ts";
import {
  InsufficientFundsError,
  openSystemAccount,
  postTransaction,
  spendTokens,
  verifyLedger,
} from "./index.ts";

let database: TestDatabase;
let db: Database;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "ledger_spend_concurrency");
  db = database.db;
});

afterAll(async () => {
  await database.drop();
});

const balanceOf = (accountId: number) => accountBalance(db, accountId);
const createFundedUser = (free: bigint, paid: bigint) => createFundedLedgerUser(db, free, paid);

describe("spendTokens under concurrency", () => {
  it("runs beside postings to revenue", async () => {
    const pool = createPool({ url: database.url, max: 16, applicationName: "spend-mixed" });
    const concurrentDb = createDatabase(pool);
    try {
      const user = await createFundedUser(0n, 1000n);
      const revenue = await openSystemAccount(db, "revenue_usage");

      // Refunds lock revenue_usage and user_paid, listing revenue first, while spends lock the
      // user's accounts and revenue_usage. Without one lock order these could deadlock.
      const spends = Array.from({ length: 60 }, () =>
        spendTokens(concurrentDb, user.userId, 3n, `spend-${randomUUID()}`),
      );
      const refunds = Array.from({ length: 60 }, () =>
        postTransaction(concurrentDb, {
          idempotencyKey: `refund-${randomUUID()}`,
          kind: "refund",
          entries: [
            { accountId: revenue.id, amount: -2n },
            { accountId: user.paid.id, amount: 2n },
          ],
        }),
      );
      const outcomes = await Promise.allSettled([...spends, ...refunds]);

      expect(outcomes.filter((outcome) => outcome.status === "rejected")).toEqual([]);
      expect(await balanceOf(user.paid.id)).toBe(1000n - 180n + 120n);
      await verifyLedger(db);
    } finally {
      await pool.end();
    }
  });

  it("never overspends under concurrency", async () => {
    const pool = createPool({ url: database.url, max: 16, applicationName: "spend-concurrency" });
    const concurrentDb = createDatabase(pool);
    try {
      const user = await createFundedUser(40n, 60n);

      // 30 distinct spends of 7 tokens, each sent twice at the same time: 14 fit into 100.
      const keys = Array.from({ length: 30 }, (_, index) => `spend-${index}-${randomUUID()}`);
      const outcomes = await Promise.allSettled(
        [...keys, ...keys].map((key) => spendTokens(concurrentDb, user.userId, 7n, key)),
      );

      const written = new Set<number>();
      for (const outcome of outcomes) {
        if (outcome.status === "rejected") {
          expect(outcome.reason).toBeInstanceOf(InsufficientFundsError);
        } else {
          written.add(outcome.value.id);
        }
      }
      expect(written.size).toBe(14);
      expect(await balanceOf(user.free.id)).toBe(0n);
      expect(await balanceOf(user.paid.id)).toBe(2n);
      await verifyLedger(db);
    } finally {
      await pool.end();
    }
  });
});
