import { randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accountBalance } from "../../../test/ledger-support.ts";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { ledgerTransactions } from "../../db/schema/index.ts";
import { createUser } from "../../payments/test-support.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidLedgerRequestError,
  LedgerAccountNotFoundError,
  openSystemAccount,
  openUserAccounts,
  type PostedTransaction,
  postTransaction,
  verifyLedger,
} from "./index.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeAll(async () => {
  database = await openMoneyTestDatabase("ledger_post");
  db = database.db;
});

afterAll(async () => {
  await database.close();
});

const balanceOf = (accountId: number) => accountBalance(db, accountId);

async function grantFree(accountId: number, amount: bigint): Promise<PostedTransaction> {
  const faucet = await openSystemAccount(db, "faucet");
  return await postTransaction(db, {
    idempotencyKey: `grant-${randomUUID()}`,
    kind: "free_grant",
    entries: [
      { accountId: faucet.id, amount: -amount },
      { accountId, amount },
    ],
  });
}

describe("postTransaction", () => {
  it("writes entries and balances", async () => {
    const { free } = await openUserAccounts(db, await createUser(db));
    const faucet = await openSystemAccount(db, "faucet");
    const faucetBefore = await balanceOf(faucet.id);

    const posted = await postTransaction(db, {
      idempotencyKey: `grant-${randomUUID()}`,
      kind: "free_grant",
      description: "Monthly free tokens",
      metadata: { month: "2026-12", tags: ["monthly"] },
      entries: [
        { accountId: free.id, amount: 500n },
        { accountId: faucet.id, amount: -500n },
      ],
    });

    expect(posted.replayed).toBe(false);
    expect(posted.kind).toBe("free_grant");
    expect(posted.description).toBe("Monthly free tokens");
    expect(posted.metadata).toEqual({ month: "2026-12", tags: ["monthly"] });
    expect(posted.entries).toEqual([
      { accountId: Math.min(free.id, faucet.id), amount: free.id < faucet.id ? 500n : -500n },
      { accountId: Math.max(free.id, faucet.id), amount: free.id < faucet.id ? -500n : 500n },
    ]);
    expect(await balanceOf(free.id)).toBe(500n);
    expect(await balanceOf(faucet.id)).toBe(faucetBefore - 500n);
    await verifyLedger(db);
  });

  it("replays a repeated key", async () => {
    const { free } = await openUserAccounts(db, await createUser(db));
    const faucet = await openSystemAccount(db, "faucet");
    const key = `grant-${randomUUID()}`;
    const request = {
      idempotencyKey: key,
      kind: "free_grant",
      metadata: { b: 1, a: { y: 2, x: 1 } },
      entries: [
        { accountId: faucet.id, amount: -70n },
        { accountId: free.id, amount: 70n },
      ],
    };

    const first = await postTransaction(db, request);
    // The same content with reordered entries and metadata keys is the same posting.
    const second = await postTransaction(db, {
      ...request,
      metadata: { a: { x: 1, y: 2 }, b: 1 },
      entries: [...request.entries].reverse(),
    });

    expect(second.replayed).toBe(true);
    expect(second.id).toBe(first.id);
    expect(second.entries).toEqual(first.entries);
    expect(second.createdAt).toEqual(first.createdAt);
    expect(await balanceOf(free.id)).toBe(70n);
  });

  it("replays after the funds are spent", async () => {
    const { free } = await openUserAccounts(db, await createUser(db));
    const revenue = await openSystemAccount(db, "revenue_usage");
    await grantFree(free.id, 10n);
    const charge = {
      idempotencyKey: `charge-${randomUUID()}`,
      kind: "usage",
      entries: [
        { accountId: free.id, amount: -10n },
        { accountId: revenue.id, amount: 10n },
      ],
    };

    const first = await postTransaction(db, charge);
    const replay = await postTransaction(db, charge);

    expect(replay.replayed).toBe(true);
    expect(replay.id).toBe(first.id);
    expect(await balanceOf(free.id)).toBe(0n);
  });

  it("rejects a reused key with other content", async () => {
    const { free } = await openUserAccounts(db, await createUser(db));
    const faucet = await openSystemAccount(db, "faucet");
    const key = `grant-${randomUUID()}`;
    const first = await postTransaction(db, {
      idempotencyKey: key,
      kind: "free_grant",
      entries: [
        { accountId: faucet.id, amount: -5n },
        { accountId: free.id, amount: 5n },
      ],
    });

    const failure = await postTransaction(db, {
      idempotencyKey: key,
      kind: "free_grant",
      entries: [
        { accountId: faucet.id, amount: -6n },
        { accountId: free.id, amount: 6n },
      ],
    }).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(IdempotencyConflictError);
    expect((failure as IdempotencyConflictError).transactionId).toBe(first.id);
    expect((failure as Error).message).toContain(JSON.stringify(key));
    expect(await balanceOf(free.id)).toBe(5n);
  });

  it("rejects a user balance below zero", async () => {
    const userId = await createUser(db);
    const { free } = await openUserAccounts(db, userId);
    const revenue = await openSystemAccount(db, "revenue_usage");
    await grantFree(free.id, 30n);
    const key = `charge-${randomUUID()}`;

    const failure = await postTransaction(db, {
      idempotencyKey: key,
      kind: "usage",
      entries: [
        { accountId: free.id, amount: -31n },
        { accountId: revenue.id, amount: 31n },
      ],
    }).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(InsufficientFundsError);
    expect((failure as InsufficientFundsError).userId).toBe(userId);
    expect((failure as InsufficientFundsError).available).toBe(30n);
    expect((failure as InsufficientFundsError).requested).toBe(31n);
    expect(await balanceOf(free.id)).toBe(30n);
    const stored = await db
      .select()
      .from(ledgerTransactions)
      .where(eq(ledgerTransactions.idempotencyKey, key));
    expect(stored).toEqual([]);
  });

  it("lets system accounts go negative", async () => {
    const clearing = await openSystemAccount(db, "payments_clearing");
    const { paid } = await openUserAccounts(db, await createUser(db));

    await postTransaction(db, {
      idempotencyKey: `payment-${randomUUID()}`,
      kind: "payment.test",
      entries: [
        { accountId: clearing.id, amount: -250n },
        { accountId: paid.id, amount: 250n },
      ],
    });

    expect(await balanceOf(clearing.id)).toBeLessThan(0n);
    expect(await balanceOf(paid.id)).toBe(250n);
  });

  it("rejects unknown accounts", async () => {
    const faucet = await openSystemAccount(db, "faucet");

    const single = await postTransaction(db, {
      idempotencyKey: `x-${randomUUID()}`,
      kind: "free_grant",
      entries: [
        { accountId: faucet.id, amount: -1n },
        { accountId: 999_999, amount: 1n },
      ],
    }).catch((error: unknown) => error);
    const both = await postTransaction(db, {
      idempotencyKey: `x-${randomUUID()}`,
      kind: "free_grant",
      entries: [
        { accountId: 999_998, amount: -1n },
        { accountId: 999_999, amount: 1n },
      ],
    }).catch((error: unknown) => error);

    expect(single).toBeInstanceOf(LedgerAccountNotFoundError);
    expect((single as LedgerAccountNotFoundError).accountIds).toEqual([999_999]);
    expect((single as Error).message).toContain("Ledger account 999999 not found");
    expect((both as Error).message).toContain("Ledger accounts 999998, 999999 not found");
  });

  it("rejects an invalid request before writing", async () => {
    const failure = await postTransaction(db, {
      idempotencyKey: `x-${randomUUID()}`,
      kind: "usage",
      entries: [
        { accountId: 1, amount: -1n },
        { accountId: 2, amount: 2n },
      ],
    }).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(InvalidLedgerRequestError);
    expect((failure as Error).message).toBe(
      "Invalid ledger request field entries: amounts sum to 1, but a double-entry posting must sum to 0",
    );
  });

  it("names the request when it is no object", async () => {
    const failure = await postTransaction(db, null as never).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(InvalidLedgerRequestError);
    expect((failure as InvalidLedgerRequestError).field).toBe("request");
  });

  it("rejects an account twice", async () => {
    const { free } = await openUserAccounts(db, await createUser(db));
    const failure = await postTransaction(db, {
      idempotencyKey: `twice-${randomUUID()}`,
      kind: "usage",
      entries: [
        { accountId: free.id, amount: -1n },
        { accountId: free.id, amount: 1n },
      ],
    }).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(InvalidLedgerRequestError);
    expect((failure as Error).message).toMatch(`account ${free.id} appears twice`);
  });

  it("keeps every account in tokens", async () => {
    // A posting is balanced in one currency only, so the database refuses any other.
    const failure = await db
      .execute(
        sql`insert into ledger_accounts (owner_kind, kind, currency) values ('system', 'payments_clearing', 'XTR')`,
      )
      .catch((error: unknown) => error);

    const { cause } = failure as { cause?: { constraint?: string } };
    expect(cause?.constraint ?? (failure as { constraint?: string }).constraint).toBe(
      "ledger_accounts_currency_check",
    );
  });
});
