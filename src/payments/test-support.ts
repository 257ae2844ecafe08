/** Helpers of the payment tests: users, balances and ledger counts. */
import { randomUUID } from "node:crypto";
import { and, eq, like, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  ledgerAccounts,
  ledgerTransactions,
  paymentMismatches,
  paymentOrders,
  users,
} from "../db/schema/index.ts";

export async function createUser(db: DatabaseLike): Promise<string> {
  const [user] = await db
    .insert(users)
    .values({ login: `payer-${randomUUID()}` })
    .returning({ id: users.id });
  return (user as { id: string }).id;
}

/** Returns the user's paid-token balance, 0 before the account exists. */
export async function paidBalance(db: DatabaseLike, userId: string): Promise<bigint> {
  const [account] = await db
    .select({ balance: ledgerAccounts.balance })
    .from(ledgerAccounts)
    .where(and(eq(ledgerAccounts.ownerId, userId), eq(ledgerAccounts.kind, "user_paid")));
  return account?.balance ?? 0n;
}

/** Counts ledger transactions whose idempotency key starts with `prefix`. */
export async function countPostings(db: DatabaseLike, prefix: string): Promise<number> {
  const [row] = await db
    .select({ count: sql<number>`count(*)::int` })
    .from(ledgerTransactions)
    .where(like(ledgerTransactions.idempotencyKey, `${prefix}%`));
  return (row as { count: number }).count;
}

export async function orderState(db: DatabaseLike, orderId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ state: paymentOrders.state })
    .from(paymentOrders)
    .where(eq(paymentOrders.id, orderId));
  return row?.state;
}

/** Returns the mismatch kinds stored for a payment id or an order id. */
export async function mismatchKinds(db: DatabaseLike, subject: string): Promise<string[]> {
  const rows = await db
    .select({ kind: paymentMismatches.kind })
    .from(paymentMismatches)
    .where(like(paymentMismatches.fingerprint, `%:${subject}`));
  return rows.map((row) => row.kind).sort();
}
