/** Helpers of the ledger tests: users, funded accounts and balances. */
import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import type { DatabaseLike } from "../src/db/client.ts";
import { ledgerAccounts } from "../src/db/schema/index.ts";
import {
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  type UserAccounts,
} from "../src/money/ledger/index.ts";
import { createUser } from "../src/payments/test-support.ts";

export async function accountBalance(db: DatabaseLike, accountId: number): Promise<bigint> {
  const [account] = await db
    .select({ balance: ledgerAccounts.balance })
    .from(ledgerAccounts)
    .where(eq(ledgerAccounts.id, accountId));
  return (account as { balance: bigint }).balance;
}

/** Creates a user with `free` free tokens and `paid` paid tokens. */
export async function createFundedUser(
  db: DatabaseLike,
  free: bigint,
  paid: bigint,
): Promise<{ userId: string } & UserAccounts> {
  const userId = await createUser(db);
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
