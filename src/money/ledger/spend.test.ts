import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accountBalance,
  createFundedUser as createFundedLedgerUser,
} from "../../../test/ledger-support.ts";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { ledgerTransactions } from "../../db/schema/index.ts";
import { createUser } from "../../payments/test-support.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidLedgerRequestError,
  openSystemAccount,
  postTransaction,
  spendTokens,
} from "./index.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeAll(async () => {
  database = await openMoneyTestDatabase("ledger_spend");
  db = database.db;
});

afterAll(async () => {
  await database.close();
});

const balanceOf = (accountId: number) => accountBalance(db, accountId);
const createFundedUser = (free: bigint, paid: bigint) => createFundedLedgerUser(db, free, paid);

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
    const userId = await createUser(db);

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
    const userId = await createUser(db);
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
});
