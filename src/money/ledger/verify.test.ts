import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { createUser as createPaymentUser } from "../../payments/test-support.ts";
import {
  LedgerIntegrityError,
  openSystemAccount,
  openUserAccounts,
  type PostedTransaction,
  postTransaction,
  verifyLedger,
} from "./index.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeEach(async () => {
  database = await openMoneyTestDatabase("ledger_verify");
  db = database.db;
});

afterEach(async () => {
  await database.close();
});

const createUser = () => createPaymentUser(db);

async function postGrant(accountId: number, amount: bigint): Promise<PostedTransaction> {
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

/**
 * Runs `statement` with every trigger and foreign key off, as a faulty script or a manual edit
 * with superuser rights could. Embedded PostgreSQL runs the tests as a superuser.
 */
async function tamper(statement: ReturnType<typeof sql>): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`set local session_replication_role = replica`);
    await tx.execute(statement);
  });
}

async function verificationFailure(): Promise<LedgerIntegrityError> {
  const failure = await verifyLedger(db).catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(LedgerIntegrityError);
  return failure as LedgerIntegrityError;
}

describe("verifyLedger", () => {
  it("passes on a consistent ledger", async () => {
    const { free } = await openUserAccounts(db, await createUser());
    await postGrant(free.id, 10n);
    await postGrant(free.id, 5n);

    // faucet, user_free and user_paid; two transactions.
    expect(await verifyLedger(db)).toEqual({ accounts: 3, transactions: 2 });
  });

  it("detects a tampered balance", async () => {
    const { free } = await openUserAccounts(db, await createUser());
    await postGrant(free.id, 10n);

    await db.execute(sql`update ledger_accounts set balance = 1000 where id = ${free.id}`);

    const failure = await verificationFailure();
    expect(failure.accounts).toEqual([{ accountId: free.id, balance: 1000n, entriesSum: 10n }]);
    expect(failure.transactions).toEqual([]);
    expect(failure.message).toContain("failed with 1 mismatch:");
    expect(failure.message).toContain(
      `account ${free.id} has balance 1000, but its entries sum to 10`,
    );
  });

  it("detects a tampered entry", async () => {
    const { free } = await openUserAccounts(db, await createUser());
    const faucet = await openSystemAccount(db, "faucet");
    const posted = await postGrant(free.id, 10n);

    await tamper(
      sql`update ledger_entries set amount = 500 where transaction_id = ${posted.id} and account_id = ${free.id}`,
    );

    const failure = await verificationFailure();
    expect(failure.accounts).toEqual([{ accountId: free.id, balance: 10n, entriesSum: 500n }]);
    expect(failure.transactions).toEqual([
      {
        transactionId: posted.id,
        idempotencyKey: posted.idempotencyKey,
        entriesSum: 490n,
        entryCount: 2,
      },
    ]);
    expect(failure.message).toContain("failed with 2 mismatches:");
    expect(failure.message).not.toContain(`account ${faucet.id} `);
  });

  it("detects a transaction without entries", async () => {
    const { free } = await openUserAccounts(db, await createUser());
    const posted = await postGrant(free.id, 10n);

    // Moving both entries to another transaction keeps every account balance right.
    await tamper(sql`
      insert into ledger_transactions (id, idempotency_key, kind, content_hash)
      values (${posted.id + 1000}, 'moved', 'free_grant', 'x')
    `);
    await tamper(
      sql`update ledger_entries set transaction_id = ${posted.id + 1000} where transaction_id = ${posted.id}`,
    );

    const failure = await verificationFailure();
    expect(failure.accounts).toEqual([]);
    expect(failure.transactions).toEqual([
      {
        transactionId: posted.id,
        idempotencyKey: posted.idempotencyKey,
        entriesSum: 0n,
        entryCount: 0,
      },
    ]);
  });
});

describe("ledger triggers", () => {
  async function commitFailure(statements: ReturnType<typeof sql>[]): Promise<unknown> {
    return await db
      .transaction(async (tx) => {
        for (const statement of statements) await tx.execute(statement);
      })
      .catch((error: unknown) => error);
  }

  function constraintOf(error: unknown): string | undefined {
    const { cause } = error as { cause?: { constraint?: string } };
    return cause?.constraint ?? (error as { constraint?: string }).constraint;
  }

  it("rejects an unbalanced transaction at commit", async () => {
    const { free } = await openUserAccounts(db, await createUser());
    const faucet = await openSystemAccount(db, "faucet");

    const failure = await commitFailure([
      sql`insert into ledger_transactions (id, idempotency_key, kind, content_hash) values (9001, 'u', 'free_grant', 'x')`,
      sql`insert into ledger_entries (transaction_id, account_id, amount) values (9001, ${faucet.id}, -5), (9001, ${free.id}, 6)`,
    ]);

    expect(failure).toBeInstanceOf(Error);
    expect(constraintOf(failure)).toBe("ledger_entries_balanced");
    expect(String((failure as Error).cause ?? failure)).toContain(
      "Ledger transaction 9001 is unbalanced: its entries sum to 1 instead of 0",
    );
  });

  it("rejects a transaction without entries", async () => {
    const failure = await commitFailure([
      sql`insert into ledger_transactions (id, idempotency_key, kind, content_hash) values (9002, 'e', 'free_grant', 'x')`,
    ]);

    expect(constraintOf(failure)).toBe("ledger_transactions_has_entries");
  });

  it("keeps history append-only", async () => {
    const { free } = await openUserAccounts(db, await createUser());
    const posted = await postGrant(free.id, 10n);

    const update = await commitFailure([
      sql`update ledger_entries set amount = 11 where transaction_id = ${posted.id} and account_id = ${free.id}`,
    ]);
    const remove = await commitFailure([
      sql`delete from ledger_transactions where id = ${posted.id}`,
    ]);

    expect(String((update as Error).cause ?? update)).toContain(
      "ledger_entries is append-only: UPDATE is not allowed",
    );
    expect(String((remove as Error).cause ?? remove)).toContain(
      "ledger_transactions is append-only: DELETE is not allowed",
    );
    expect(await verifyLedger(db)).toEqual({ accounts: 3, transactions: 1 });
  });

  it("survives running the migrations again", async () => {
    await database.migrate();

    const triggers = await db.execute<{ count: string }>(
      sql`select count(*) from pg_trigger where tgname like 'ledger_%'`,
    );
    expect(Number(triggers.rows[0]?.count)).toBe(4);
  });
});
