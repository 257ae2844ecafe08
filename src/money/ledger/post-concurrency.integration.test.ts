/**
 * postTransaction from many connections at once; needs the PostgreSQL server, since PGlite
 * serves one connection.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { accountBalance } from "../../../test/ledger-support.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { createDatabase, createPool, type Database } from "../../db/client.ts";
import { createUser } from "../../payments/test-support.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  openSystemAccount,
  openUserAccounts,
  type PostedTransaction,
  postTransaction,
  verifyLedger,
} from "./index.ts";

let database: TestDatabase;
let db: Database;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "ledger_post_concurrency");
  db = database.db;
});

afterAll(async () => {
  await database.drop();
});

const balanceOf = (accountId: number) => accountBalance(db, accountId);

describe("postTransaction under concurrency", () => {
  it("loses no update and never deadlocks", async () => {
    // A second pool, so the postings really run on many connections at once.
    const pool = createPool({ url: database.url, max: 16, applicationName: "ledger-concurrency" });
    const concurrentDb = createDatabase(pool);
    try {
      const userIds = [await createUser(db), await createUser(db), await createUser(db)];
      const userAccounts = await Promise.all(userIds.map((id) => openUserAccounts(db, id)));
      const faucet = await openSystemAccount(db, "faucet");
      const revenue = await openSystemAccount(db, "revenue_usage");
      const accounts = [
        faucet.id,
        revenue.id,
        ...userAccounts.flatMap(({ free, paid }) => [free.id, paid.id]),
      ];
      const before = new Map<number, bigint>();
      for (const id of accounts) before.set(id, await balanceOf(id));

      // Each posting moves an amount between two or three accounts picked round-robin. The
      // entries are listed in a different order per posting, so without the global lock order
      // two postings would lock the same pair in opposite orders and deadlock.
      const requests = Array.from({ length: 240 }, (_, index) => {
        const from = accounts[index % accounts.length] as number;
        const to = accounts[(index * 7 + 3) % accounts.length] as number;
        const third = accounts[(index * 5 + 1) % accounts.length] as number;
        const amount = BigInt((index % 13) + 1);
        const entries =
          from === to
            ? [
                { accountId: faucet.id === from ? revenue.id : faucet.id, amount: -amount },
                { accountId: from, amount },
              ]
            : third === from || third === to
              ? [
                  { accountId: from, amount: -amount },
                  { accountId: to, amount },
                ]
              : [
                  { accountId: from, amount: -2n * amount },
                  { accountId: to, amount },
                  { accountId: third, amount },
                ];
        return {
          idempotencyKey: `concurrent-${index}-${randomUUID()}`,
          kind: "transfer",
          entries: index % 2 === 0 ? entries : [...entries].reverse(),
        };
      });

      const outcomes = await Promise.allSettled(
        requests.map((request) => postTransaction(concurrentDb, request)),
      );

      const expected = new Map(before);
      let posted = 0;
      for (const outcome of outcomes) {
        if (outcome.status === "rejected") {
          // Only a user account running dry may stop a posting; a deadlock (40P01) or any
          // other error fails here.
          expect(outcome.reason).toBeInstanceOf(InsufficientFundsError);
          continue;
        }
        posted++;
        for (const entry of outcome.value.entries) {
          expected.set(entry.accountId, (expected.get(entry.accountId) as bigint) + entry.amount);
        }
      }
      expect(posted).toBeGreaterThan(100);
      for (const id of accounts) {
        expect(await balanceOf(id)).toBe(expected.get(id));
      }
      await verifyLedger(db);
    } finally {
      await pool.end();
    }
  });

  it("writes a replayed key once", async () => {
    const pool = createPool({ url: database.url, max: 16, applicationName: "ledger-replay" });
    const concurrentDb = createDatabase(pool);
    try {
      const { paid } = await openUserAccounts(db, await createUser(db));
      const clearing = await openSystemAccount(db, "payments_clearing");
      const request = {
        idempotencyKey: `payment-${randomUUID()}`,
        kind: "payment.test",
        entries: [
          { accountId: clearing.id, amount: -40n },
          { accountId: paid.id, amount: 40n },
        ],
      };

      const results = await Promise.all(
        Array.from({ length: 32 }, () => postTransaction(concurrentDb, request)),
      );

      expect(results.filter((result) => !result.replayed)).toHaveLength(1);
      expect(new Set(results.map((result) => result.id)).size).toBe(1);
      expect(await balanceOf(paid.id)).toBe(40n);
      await verifyLedger(db);
    } finally {
      await pool.end();
    }
  });

  it("rejects parallel conflicting contents", async () => {
    const pool = createPool({ url: database.url, max: 16, applicationName: "ledger-conflict" });
    const concurrentDb = createDatabase(pool);
    try {
      const { paid } = await openUserAccounts(db, await createUser(db));
      const clearing = await openSystemAccount(db, "payments_clearing");
      const key = `payment-${randomUUID()}`;

      const outcomes = await Promise.allSettled(
        Array.from({ length: 16 }, (_, index) =>
          postTransaction(concurrentDb, {
            idempotencyKey: key,
            kind: "payment.test",
            entries: [
              { accountId: clearing.id, amount: -BigInt(index + 1) },
              { accountId: paid.id, amount: BigInt(index + 1) },
            ],
          }),
        ),
      );

      const written = outcomes.filter((outcome) => outcome.status === "fulfilled");
      const rejected = outcomes.filter((outcome) => outcome.status === "rejected");
      expect(written).toHaveLength(1);
      for (const outcome of rejected) {
        expect(outcome.reason).toBeInstanceOf(IdempotencyConflictError);
      }
      const [winner] = written as PromiseFulfilledResult<PostedTransaction>[];
      const credited = winner?.value.entries.find((entry) => entry.accountId === paid.id);
      expect(await balanceOf(paid.id)).toBe(credited?.amount);
    } finally {
      await pool.end();
    }
  });
});
