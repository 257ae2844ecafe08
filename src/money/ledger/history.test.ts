import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { createUser as createPaymentUser } from "../../payments/test-support.ts";
import {
  HISTORY_MAX_LIMIT,
  InvalidLedgerRequestError,
  listUserHistory,
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  readUserLedger,
  spendTokens,
} from "./index.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeAll(async () => {
  database = await openMoneyTestDatabase("ledger_history");
  db = database.db;
});

afterAll(async () => {
  await database.close();
});

const createUser = () => createPaymentUser(db);

async function grant(accountId: number, amount: bigint, kind: "faucet" | "payments_clearing") {
  const source = await openSystemAccount(db, kind);
  return await postTransaction(db, {
    idempotencyKey: `grant-${randomUUID()}`,
    kind: kind === "faucet" ? "free_grant" : "payment.test",
    description: `${amount} tokens`,
    entries: [
      { accountId: source.id, amount: -amount },
      { accountId, amount },
    ],
  });
}

describe("listUserHistory", () => {
  it("lists the user's changes newest first", async () => {
    const userId = await createUser();
    const other = await openUserAccounts(db, await createUser());
    const { free, paid } = await openUserAccounts(db, userId);
    const granted = await grant(free.id, 10n, "faucet");
    await grant(other.free.id, 99n, "faucet");
    const paidIn = await grant(paid.id, 20n, "payments_clearing");
    const spent = await spendTokens(db, userId, 15n, `spend-${randomUUID()}`, {
      metadata: { unitId: "u-1" },
    });

    const page = await listUserHistory(db, userId);

    expect(page.nextAfter).toBeNull();
    expect(page.items.map((item) => item.transactionId)).toEqual([spent.id, paidIn.id, granted.id]);
    const [spendItem, paymentItem, grantItem] = page.items;
    expect(spendItem?.kind).toBe("usage");
    expect(spendItem?.metadata).toEqual({ unitId: "u-1" });
    expect(spendItem?.amount).toBe(-15n);
    expect(spendItem?.changes).toEqual([
      { accountKind: "user_free", amount: -10n },
      { accountKind: "user_paid", amount: -5n },
    ]);
    expect(paymentItem?.changes).toEqual([{ accountKind: "user_paid", amount: 20n }]);
    expect(grantItem?.description).toBe("10 tokens");
    expect(grantItem?.amount).toBe(10n);
    expect(grantItem?.createdAt).toBeInstanceOf(Date);
  });

  it("pages with nextAfter", async () => {
    const userId = await createUser();
    const { paid } = await openUserAccounts(db, userId);
    const posted = [];
    for (let index = 0; index < 5; index++) {
      posted.push(await grant(paid.id, BigInt(index + 1), "payments_clearing"));
    }
    const newestFirst = posted.map((transaction) => transaction.id).reverse();

    const first = await listUserHistory(db, userId, { limit: 2 });
    const second = await listUserHistory(db, userId, { limit: 2, after: first.nextAfter ?? 0 });
    const third = await listUserHistory(db, userId, { limit: 2, after: second.nextAfter ?? 0 });

    expect(first.items.map((item) => item.transactionId)).toEqual(newestFirst.slice(0, 2));
    expect(first.nextAfter).toBe(newestFirst[1]);
    expect(second.items.map((item) => item.transactionId)).toEqual(newestFirst.slice(2, 4));
    expect(third.items.map((item) => item.transactionId)).toEqual(newestFirst.slice(4));
    expect(third.nextAfter).toBeNull();
  });

  it("is empty without accounts or postings", async () => {
    const withoutAccounts = await createUser();
    const withAccounts = await createUser();
    await openUserAccounts(db, withAccounts);

    expect(await listUserHistory(db, withoutAccounts)).toEqual({ items: [], nextAfter: null });
    expect(await listUserHistory(db, withAccounts)).toEqual({ items: [], nextAfter: null });
  });

  it("rejects invalid queries", async () => {
    const userId = await createUser();
    const cases: [Parameters<typeof listUserHistory>[2], string][] = [
      [{ limit: 0 }, "limit"],
      [{ limit: HISTORY_MAX_LIMIT + 1 }, "limit"],
      [{ limit: 1.5 }, "limit"],
      [{ after: 0 }, "after"],
      [{ after: 2.5 }, "after"],
    ];
    for (const [query, field] of cases) {
      const failure = await listUserHistory(db, userId, query).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(InvalidLedgerRequestError);
      expect((failure as InvalidLedgerRequestError).field).toBe(field);
    }
    const badUser = await listUserHistory(db, "x").catch((error: unknown) => error);
    expect((badUser as InvalidLedgerRequestError).field).toBe("userId");
  });
});

describe("readUserLedger", () => {
  it("returns the balance and the balance after each item", async () => {
    const userId = await createUser();
    const { free, paid } = await openUserAccounts(db, userId);
    const granted = await grant(free.id, 10n, "faucet");
    const paidIn = await grant(paid.id, 20n, "payments_clearing");
    const spent = await spendTokens(db, userId, 15n, `spend-${randomUUID()}`);

    const ledger = await readUserLedger(db, userId);

    expect(ledger.free).toBe(0n);
    expect(ledger.paid).toBe(15n);
    expect(ledger.nextAfter).toBeNull();
    expect(ledger.items.map((item) => item.transactionId)).toEqual([
      spent.id,
      paidIn.id,
      granted.id,
    ]);
    expect(ledger.items.map((item) => item.balanceAfter)).toEqual([15n, 30n, 10n]);
    expect(ledger.items[0]?.amount).toBe(-15n);
  });

  it("continues the balance on later pages", async () => {
    const userId = await createUser();
    const { paid } = await openUserAccounts(db, userId);
    for (let index = 0; index < 4; index++) {
      await grant(paid.id, BigInt(10 ** index), "payments_clearing");
    }

    const first = await readUserLedger(db, userId, { limit: 3 });
    const second = await readUserLedger(db, userId, { limit: 3, after: first.nextAfter ?? 0 });
    const beyond = await readUserLedger(db, userId, { after: second.items[0]?.transactionId ?? 0 });

    expect(first.items.map((item) => item.balanceAfter)).toEqual([1111n, 111n, 11n]);
    expect(second.items.map((item) => item.balanceAfter)).toEqual([1n]);
    expect(second.nextAfter).toBeNull();
    expect(second.paid).toBe(1111n);
    expect(beyond.items).toEqual([]);
    expect(beyond.paid).toBe(1111n);
  });

  it("reads zero for a user without accounts", async () => {
    const userId = await createUser();
    expect(await readUserLedger(db, userId)).toEqual({
      free: 0n,
      paid: 0n,
      items: [],
      nextAfter: null,
    });
  });

  it("rejects an invalid query", async () => {
    const failure = await readUserLedger(db, await createUser(), { limit: 0 }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(InvalidLedgerRequestError);
    expect((failure as InvalidLedgerRequestError).field).toBe("limit");
  });
});
