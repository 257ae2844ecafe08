import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { createDatabase, createPool, type Database } from "../../db/client.ts";
import { ledgerAccounts, ledgerTransactions, users } from "../../db/schema/index.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidLedgerRequestError,
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  spendTokens,
  type UserAccounts,
  verifyLedger,
} from "./index.ts";

let database: TestDatabase;
let db: Database;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "ledger_spend");
  db = database.db;
});

afterAll(async () => {
  await database.drop();
});

async function createUser(): Promise<string> {
  const [user] = await db
    .insert(users)
    .values({ login: `user-${randomUUID()}` })
    .returning({ id: users.id });
  return (user as { id: string }).id;
}

async function balanceOf(accountId: number): Promise<bigint> {
  const [account] = await db
    .select({ balance: ledgerAccounts.balance })
    .from(ledgerAccounts)
    .where(eq(ledgerAccounts.id, accountId));
  return (account as { balance: bigint }).balance;
}

/** Creates a user with `free` free tokens and `paid` paid tokens. */
async function createFundedUser(
  free: bigint,
  paid: bigint,
): Promise<{ userId: string } & UserAccounts> {
  const userId = await createUser();
  const accounts = await openUserAccounts(db, userId);
  const faucet = await openSystemAccount(db, "faucet");
  const clearing = await openSystemAccount(db, "payments_clearing");
  if (free > 0n) {
    await postTransaction(db, {
      idempotencyKey: `grant-${randomUUID()}`,
      kind: "free_grant",
      entries: [
        { accountId: faucet.id, amount: -free },
        { accountId: accounts.free.id, amount: free },
      ],
    });
  }
  if (paid > 0n) {
    await postTransaction(db, {
      idempotencyKey: `payment-${randomUUID()}`,
      kind: "payment.test",
      entries: [
        { accountId: clearing.id, amount: -paid },
        { accountId: accounts.paid.id, amount: paid },
      ],
    });
  }
  return { userId, ...accounts };
}

describe("spendTokens", () => {
  it("spends free tokens first", async () => {
    const user = await createFundedUser(50n, 50n);
    const revenue = await openSystemAccount(db, "revenue_usage");
    const revenueBefore = await balanceOf(revenue.id);

    const posted = await spendTokens(db, user.userId, 30n, `spend-${randomUUID()}`, {
      description: "Load of Unit weather-1",
      metadata: { unitId: "weather-1" },
    });

    expect(posted.kind).toBe("usage");
    expect(posted.description).toBe("Load of Unit weather-1");
    expect(posted.metadata).toEqual({ unitId: "weather-1" });
    expect(posted.entries).toHaveLength(2);
    expect(await balanceOf(user.free.id)).toBe(20n);
    expect(await balanceOf(user.paid.id)).toBe(50n);
    expect(await balanceOf(revenue.id)).toBe(revenueBefore + 30n);
  });

  it("splits between free and paid", async () => {
    const user = await createFundedUser(20n, 50n);

    const posted = await spendTokens(db, user.userId, 45n, `spend-${randomUUID()}`);

    expect(posted.entries).toHaveLength(3);
    expect(posted.entries).toContainEqual({ accountId: user.free.id, amount: -20n });
    expect(posted.entries).toContainEqual({ accountId: user.paid.id, amount: -25n });
    expect(await balanceOf(user.free.id)).toBe(0n);
    expect(await balanceOf(user.paid.id)).toBe(25n);
  });

  it("spends paid tokens when free are gone", async () => {
    const user = await createFundedUser(0n, 50n);

    const posted = await spendTokens(db, user.userId, 10n, `spend-${randomUUID()}`, {
      kind: "usage.aggregation",
    });

    expect(posted.kind).toBe("usage.aggregation");
    expect(posted.entries).toContainEqual({ accountId: user.paid.id, amount: -10n });
    expect(posted.entries).toHaveLength(2);
    expect(await balanceOf(user.paid.id)).toBe(40n);
  });

  it("rejects a spend above the balance", async () => {
    const user = await createFundedUser(5n, 6n);
    const key = `spend-${randomUUID()}`;

    const failure = await spendTokens(db, user.userId, 12n, key).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(InsufficientFundsError);
    expect((failure as InsufficientFundsError).available).toBe(11n);
    expect((failure as InsufficientFundsError).requested).toBe(12n);
    expect((failure as Error).message).toContain("(5 free, 6 paid)");
    expect(await balanceOf(user.free.id)).toBe(5n);
    expect(await balanceOf(user.paid.id)).toBe(6n);
    const stored = await db
      .select()
      .from(ledgerTransactions)
      .where(eq(ledgerTransactions.idempotencyKey, key));
    expect(stored).toEqual([]);
  });

  it("opens the accounts of a new user", async () => {
    const userId = await createUser();

    const failure = await spendTokens(db, userId, 1n, `spend-${randomUUID()}`).catch(
      (error: unknown) => error,
    );

    expect(failure).toBeInstanceOf(InsufficientFundsError);
    expect((failure as InsufficientFundsError).available).toBe(0n);
  });

  it("replays with the first split", async () => {
    const user = await createFundedUser(10n, 100n);
    const key = `spend-${randomUUID()}`;

    const first = await spendTokens(db, user.userId, 15n, key);
    // A later grant changes what a new split would be, but the replay returns the first one.
    await postTransaction(db, {
      idempotencyKey: `grant-${randomUUID()}`,
      kind: "free_grant",
      entries: [
        { accountId: (await openSystemAccount(db, "faucet")).id, amount: -100n },
        { accountId: user.free.id, amount: 100n },
      ],
    });
    const replay = await spendTokens(db, user.userId, 15n, key);

    expect(replay.replayed).toBe(true);
    expect(replay.id).toBe(first.id);
    expect(replay.entries).toEqual(first.entries);
    expect(await balanceOf(user.free.id)).toBe(100n);
    expect(await balanceOf(user.paid.id)).toBe(95n);
  });

  it("rejects a reused key with another amount", async () => {
    const user = await createFundedUser(100n, 0n);
    const key = `spend-${randomUUID()}`;
    await spendTokens(db, user.userId, 15n, key);

    const failure = await spendTokens(db, user.userId, 16n, key).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(IdempotencyConflictError);
    expect(await balanceOf(user.free.id)).toBe(85n);
  });

  it("rejects invalid input", async () => {
    const userId = await createUser();
    const cases: [() => Promise<unknown>, string][] = [
      [() => spendTokens(db, "not-a-uuid", 1n, "k"), "userId"],
      [() => spendTokens(db, userId, 0n, "k"), "amount"],
      [() => spendTokens(db, userId, -5n, "k"), "amount"],
      [() => spendTokens(db, userId, 1n, ""), "idempotencyKey"],
      [() => spendTokens(db, randomUUID(), 1n, `spend-${randomUUID()}`), "userId"],
    ];
    for (const [call, field] of cases) {
      const failure = await call().catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(InvalidLedgerRequestError);
      expect((failure as InvalidLedgerRequestError).field).toBe(field);
    }
  });

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
