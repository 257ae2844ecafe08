/**
 * Opening ledger accounts. Every account starts at balance 0, and opening is idempotent, so
 * callers open accounts right before they post to them.
 */
import { and, asc, eq, inArray, isNull } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import {
  type LedgerAccount,
  ledgerAccounts,
  type SystemAccountKind,
  USER_ACCOUNT_KINDS,
  users,
} from "../../db/schema/index.ts";
import { InvalidLedgerRequestError } from "./errors.ts";
import { parseUserId } from "./validation.ts";

/** The two token accounts of one user. */
export interface UserAccounts {
  free: LedgerAccount;
  paid: LedgerAccount;
}

/** A user's free and paid tokens and the ids of the accounts that hold them. */
export interface UserBalances {
  free: bigint;
  paid: bigint;
  accountIds: number[];
}

/** Reads the user's free and paid tokens, with 0 for accounts not opened yet. */
export async function readUserBalances(db: DatabaseLike, userId: string): Promise<UserBalances> {
  const accounts = await db
    .select({ id: ledgerAccounts.id, kind: ledgerAccounts.kind, balance: ledgerAccounts.balance })
    .from(ledgerAccounts)
    .where(
      and(
        eq(ledgerAccounts.ownerKind, "user"),
        eq(ledgerAccounts.ownerId, userId),
        inArray(ledgerAccounts.kind, USER_ACCOUNT_KINDS),
      ),
    );
  const balances: UserBalances = { free: 0n, paid: 0n, accountIds: [] };
  for (const account of accounts) {
    if (account.kind === "user_free") balances.free += account.balance;
    else balances.paid += account.balance;
    balances.accountIds.push(account.id);
  }
  return balances;
}

/**
 * Returns the user's `user_free` and `user_paid` accounts, creating the missing ones. Raises
 * {@link InvalidLedgerRequestError} when the id is not a UUID or no user has it.
 */
export async function openUserAccounts(db: DatabaseLike, userId: string): Promise<UserAccounts> {
  const id = parseUserId(userId);
  let accounts = await selectUserAccounts(db, id);
  if (accounts.length < USER_ACCOUNT_KINDS.length) {
    const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
    if (user === undefined) {
      throw new InvalidLedgerRequestError("userId", `no user has the id ${id}`);
    }
    await db
      .insert(ledgerAccounts)
      .values(USER_ACCOUNT_KINDS.map((kind) => ({ ownerKind: "user" as const, ownerId: id, kind })))
      .onConflictDoNothing();
    accounts = await selectUserAccounts(db, id);
  }

  // The select orders by kind, and "user_free" sorts before "user_paid".
  const [free, paid] = accounts as [LedgerAccount, LedgerAccount];
  return { free, paid };
}

/** Returns the node's account of `kind`, creating it when missing. */
export async function openSystemAccount(
  db: DatabaseLike,
  kind: SystemAccountKind,
): Promise<LedgerAccount> {
  await db
    .insert(ledgerAccounts)
    .values({ ownerKind: "system", ownerId: null, kind })
    .onConflictDoNothing();
  const [account] = await db
    .select()
    .from(ledgerAccounts)
    .where(
      and(
        eq(ledgerAccounts.ownerKind, "system"),
        isNull(ledgerAccounts.ownerId),
        eq(ledgerAccounts.kind, kind),
      ),
    );
  return account as LedgerAccount;
}

function selectUserAccounts(db: DatabaseLike, userId: string): Promise<LedgerAccount[]> {
  return db
    .select()
    .from(ledgerAccounts)
    .where(and(eq(ledgerAccounts.ownerKind, "user"), eq(ledgerAccounts.ownerId, userId)))
    .orderBy(asc(ledgerAccounts.kind));
}
