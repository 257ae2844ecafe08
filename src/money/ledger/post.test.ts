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
  LedgerAccountNotFoundError,
  openSystemAccount,
  openUserAccounts,
  type PostedTransaction,
  postTransaction,
  verifyLedger,
} from "./index.ts";

let database: TestDatabase;
let db: Database;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "ledger_post");
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
    const { free } = await openUserAccounts(db, await createUser());
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
    const { free } = await openUserAccounts(db, await createUser());
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
    const { free } = await openUserAccounts(db, await createUser());
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
    const { free } = await openUserAccounts(db, await createUser());
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
    const userId = await createUser();
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
    const { paid } = await openUserAccounts(db, await createUser());

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
});

describe("postTransaction under concurrency", () => {
  it("loses no update and never deadlocks", async () => {
    // A second pool, so the postings really run on many connections at once.
    const pool = createPool({ url: database.url, max: 16, applicationName: "ledger-concurrency" });
    const concurrentDb = createDatabase(pool);
    try {
      const userIds = [await createUser(), await createUser(), await createUser()];
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
      const { paid } = await openUserAccounts(db, await createUser());
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
      const { paid } = await openUserAccounts(db, await createUser());
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
