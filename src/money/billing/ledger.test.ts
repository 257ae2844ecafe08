import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { ledgerTransactions } from "../../db/schema/index.ts";
import { createUser as createPaymentUser } from "../../payments/test-support.ts";
import {
  IdempotencyConflictError,
  InvalidLedgerRequestError,
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  verifyLedger,
} from "../ledger/index.ts";
import { grantMonthlyAllowance, monthKey } from "./allowance.ts";
import { faucetPostingKey, grantFaucetTokens } from "./faucet.ts";
import { aggregationPostingKey, chargeUser, usagePostingKey, userBalance } from "./usage.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeAll(async () => {
  database = await openMoneyTestDatabase("money_billing");
  db = database.db;
});

afterAll(async () => {
  await database.close();
});

const createUser = () => createPaymentUser(db);

async function balances(userId: string): Promise<{ free: bigint; paid: bigint }> {
  const { free, paid } = await openUserAccounts(db, userId);
  return { free: free.balance, paid: paid.balance };
}

async function creditPaid(userId: string, amount: bigint): Promise<void> {
  const { paid } = await openUserAccounts(db, userId);
  const clearing = await openSystemAccount(db, "payments_clearing");
  await postTransaction(db, {
    idempotencyKey: `test-paid-${randomUUID()}`,
    kind: "test",
    entries: [
      { accountId: clearing.id, amount: -amount },
      { accountId: paid.id, amount },
    ],
  });
}

function charge(
  userId: string,
  key: string,
  price: { kind: "finite"; amount: bigint } | { kind: "unbounded" },
) {
  return chargeUser(db, {
    userId,
    idempotencyKey: key,
    price,
    kind: "usage",
    description: "test charge",
    metadata: { unitId: "u" },
  });
}

describe("grantMonthlyAllowance", () => {
  it("grants once per user and month", async () => {
    const userId = await createUser();
    const first = await grantMonthlyAllowance(db, userId, "2027-01", 100n);
    expect(first).toMatchObject({ status: "granted", expired: 0n, granted: 100n });
    const second = await grantMonthlyAllowance(db, userId, "2027-01", 100n);
    expect(second).toEqual({ status: "already_granted" });
    expect(await balances(userId)).toEqual({ free: 100n, paid: 0n });
  });

  it("expires the rest and keeps paid tokens", async () => {
    const userId = await createUser();
    await grantMonthlyAllowance(db, userId, "2027-01", 100n);
    await creditPaid(userId, 50n);
    await charge(userId, `k-${randomUUID()}`, { kind: "finite", amount: 30n });
    const next = await grantMonthlyAllowance(db, userId, "2027-02", 80n);
    expect(next).toMatchObject({ status: "granted", expired: 70n, granted: 80n });
    expect(await balances(userId)).toEqual({ free: 80n, paid: 50n });
    expect((await openSystemAccount(db, "expired_free")).balance).toBeGreaterThanOrEqual(70n);
  });

  it("posts a balance equal to the allowance", async () => {
    const userId = await createUser();
    await grantMonthlyAllowance(db, userId, "2027-01", 40n);
    const next = await grantMonthlyAllowance(db, userId, "2027-02", 40n);
    expect(next).toMatchObject({ status: "granted", expired: 40n, granted: 40n });
    expect(await balances(userId)).toEqual({ free: 40n, paid: 0n });
  });

  it("expires everything with a zero allowance", async () => {
    const userId = await createUser();
    await grantMonthlyAllowance(db, userId, "2027-01", 40n);
    const next = await grantMonthlyAllowance(db, userId, "2027-02", 0n);
    expect(next).toMatchObject({ status: "granted", expired: 40n, granted: 0n });
    expect(await balances(userId)).toEqual({ free: 0n, paid: 0n });
  });

  it("posts nothing for zero balance and allowance", async () => {
    const userId = await createUser();
    const outcome = await grantMonthlyAllowance(db, userId, "2027-03", 0n);
    expect(outcome).toEqual({ status: "granted", expired: 0n, granted: 0n, transactionId: null });
  });

  it("runs concurrently without a double grant", async () => {
    const userId = await createUser();
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () => grantMonthlyAllowance(db, userId, "2027-05", 25n)),
    );
    expect(outcomes.filter((outcome) => outcome.status === "granted")).toHaveLength(1);
    expect(await balances(userId)).toEqual({ free: 25n, paid: 0n });
  });

  it("rejects an invalid month and allowance", async () => {
    const userId = await createUser();
    await expect(grantMonthlyAllowance(db, userId, "2027-13", 1n)).rejects.toThrow(/Invalid month/);
    await expect(grantMonthlyAllowance(db, userId, "2027-01", -1n)).rejects.toThrow(
      /Invalid allowance -1/,
    );
  });

  it("formats the month in UTC", () => {
    expect(monthKey(new Date("2027-01-31T23:59:59Z"))).toBe("2027-01");
  });
});

describe("chargeUser", () => {
  it("charges a finite price once", async () => {
    const userId = await createUser();
    await creditPaid(userId, 100n);
    const key = usagePostingKey(randomUUID(), new Date("2027-01-01T10:00:00Z"));
    const first = await charge(userId, key, { kind: "finite", amount: 30n });
    expect(first).toMatchObject({ status: "charged", charged: 30n });
    const again = await charge(userId, key, { kind: "finite", amount: 30n });
    expect(again).toMatchObject({ status: "already_charged", exhausted: false });
    expect(await userBalance(db, userId)).toBe(70n);
  });

  it("charges nothing for a zero price", async () => {
    const userId = await createUser();
    expect(await charge(userId, `k-${randomUUID()}`, { kind: "finite", amount: 0n })).toEqual({
      status: "free",
    });
  });

  it("charges what is left when the balance is short", async () => {
    const userId = await createUser();
    await creditPaid(userId, 20n);
    const key = `k-${randomUUID()}`;
    const outcome = await charge(userId, key, { kind: "finite", amount: 50n });
    expect(outcome).toMatchObject({ status: "exhausted", charged: 20n, requested: 50n });
    expect(await userBalance(db, userId)).toBe(0n);
    const again = await charge(userId, key, { kind: "finite", amount: 50n });
    expect(again).toMatchObject({ status: "already_charged", exhausted: true });
  });

  it("charges nothing from an empty balance", async () => {
    const userId = await createUser();
    const outcome = await charge(userId, `k-${randomUUID()}`, { kind: "finite", amount: 5n });
    expect(outcome).toEqual({
      status: "exhausted",
      charged: 0n,
      requested: 5n,
      transactionId: null,
    });
  });

  it("charges the whole balance for an unbounded price", async () => {
    const userId = await createUser();
    await grantMonthlyAllowance(db, userId, "2027-01", 10n);
    await creditPaid(userId, 15n);
    const key = `k-${randomUUID()}`;
    const outcome = await charge(userId, key, { kind: "unbounded" });
    expect(outcome).toMatchObject({ status: "exhausted", charged: 25n, requested: "unbounded" });
    expect(await balances(userId)).toEqual({ free: 0n, paid: 0n });
    const [row] = await db
      .select()
      .from(ledgerTransactions)
      .where(eq(ledgerTransactions.idempotencyKey, key));
    expect(row?.metadata).toMatchObject({ requested: "unbounded", exhausted: true });
  });

  it("passes other ledger errors on", async () => {
    await expect(
      charge("not-a-uuid", `k-${randomUUID()}`, { kind: "finite", amount: 5n }),
    ).rejects.toThrow(InvalidLedgerRequestError);
  });

  it("keys charges by Unit hour and user day", () => {
    const time = new Date("2027-01-02T10:00:00Z");
    expect(usagePostingKey("u1", time)).toBe("usage:u1:2027-01-02T10:00:00.000Z");
    expect(aggregationPostingKey("a1", time)).toBe("aggregation:a1:2027-01-02");
  });

  it("reads 0 for a user without accounts", async () => {
    expect(await userBalance(db, await createUser())).toBe(0n);
  });
});

describe("grantFaucetTokens", () => {
  it("credits free tokens once per call key", async () => {
    const first = await createUser();
    const second = await createUser();
    const request = { callKey: randomUUID(), userIds: [first, second], tokens: 7n, reason: "test" };
    const grants = await grantFaucetTokens(db, request);
    expect(grants.map((grant) => grant.userId)).toEqual([first, second]);
    expect(grants.map((grant) => grant.replayed)).toEqual([false, false]);
    const replay = await grantFaucetTokens(db, request);
    expect(replay.map((grant) => grant.transactionId)).toEqual(
      grants.map((grant) => grant.transactionId),
    );
    expect(replay.map((grant) => grant.replayed)).toEqual([true, true]);

    // A replay that adds a user posts that user's grant only.
    const third = await createUser();
    const widened = await grantFaucetTokens(db, { ...request, userIds: [first, second, third] });
    expect(widened.map((grant) => grant.replayed)).toEqual([true, true, false]);
    expect(await balances(third)).toEqual({ free: 7n, paid: 0n });
    expect(await balances(first)).toEqual({ free: 7n, paid: 0n });
    expect(faucetPostingKey(request.callKey, first)).toBe(`faucet:${request.callKey}:${first}`);
  });

  it("rejects a reused key with other tokens", async () => {
    const userId = await createUser();
    const callKey = randomUUID();
    await grantFaucetTokens(db, { callKey, userIds: [userId], tokens: 1n, reason: "a" });
    await expect(
      grantFaucetTokens(db, { callKey, userIds: [userId], tokens: 2n, reason: "a" }),
    ).rejects.toThrow(IdempotencyConflictError);
  });

  it("rejects a non-positive amount", async () => {
    await expect(
      grantFaucetTokens(db, { callKey: "x", userIds: [], tokens: 0n, reason: "a" }),
    ).rejects.toThrow(/Invalid token amount 0/);
  });
});

describe("ledger after billing", () => {
  it("balances every account", async () => {
    const verification = await verifyLedger(db);
    expect(verification.accounts).toBeGreaterThan(0);
  });
});
