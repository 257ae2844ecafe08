/**
 * The one function that writes the ledger. Billing runs, payments, refunds and grants all post
 * through {@link postTransaction}, so every write gets the same idempotency, locking and balance
 * rules.
 */
import { asc, eq, inArray, sql } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import {
  type LedgerAccount,
  ledgerAccounts,
  ledgerEntries,
  ledgerTransactions,
} from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";
import { hashPosting } from "./content-hash.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidLedgerRequestError,
  LedgerAccountNotFoundError,
} from "./errors.ts";
import {
  type JsonValue,
  type Posting,
  type PostingEntry,
  type PostingRequest,
  parsePostingRequest,
} from "./validation.ts";

const logger = getNodeLogger("money", "ledger");

/** A stored ledger transaction with its entries, sorted by account id. */
export interface PostedTransaction {
  id: number;
  idempotencyKey: string;
  kind: string;
  description: string | null;
  metadata: Record<string, JsonValue>;
  createdAt: Date;
  entries: PostingEntry[];
  /** True when the key was posted before and this call wrote nothing. */
  replayed: boolean;
}

/**
 * Writes one balanced transaction and updates the balances of its accounts in one database
 * transaction.
 *
 * Idempotent by `idempotencyKey`: a repeated key with the same content returns the first
 * transaction with `replayed: true`, also when its funds have been spent since. A repeated key
 * with different content raises {@link IdempotencyConflictError}.
 *
 * The accounts are locked in ascending id order (`SELECT ... ORDER BY id FOR UPDATE`), so
 * concurrent postings over the same accounts wait for each other instead of deadlocking. Raises
 * {@link InsufficientFundsError} when a user account would go below zero,
 * {@link LedgerAccountNotFoundError} for an unknown account and {@link InvalidLedgerRequestError}
 * for an invalid request. Expects READ COMMITTED, PostgreSQL's default, when `db` is an open
 * transaction, because the replay check must see postings that other sessions committed.
 */
export async function postTransaction(
  db: DatabaseLike,
  request: PostingRequest,
): Promise<PostedTransaction> {
  const posting = parsePostingRequest(request);
  return await writePosting(db, posting, hashPosting(posting));
}

/**
 * Writes a checked posting. `contentHash` decides whether a replay matches, so a caller that
 * derives the entries from balances (such as `spendTokens`) can hash its request instead.
 */
export async function writePosting(
  db: DatabaseLike,
  posting: Posting,
  contentHash: string,
): Promise<PostedTransaction> {
  const earlier = await findTransaction(db, posting.idempotencyKey);
  if (earlier !== undefined) return replayTransaction(earlier, contentHash);

  return await db.transaction(async (tx) => {
    const accountIds = posting.entries.map((entry) => entry.accountId);
    const accounts = await lockAccounts(tx, accountIds);

    // A concurrent posting with the same key makes this insert wait for its commit and then
    // insert nothing, and the first transaction is returned as a replay.
    const [inserted] = await tx
      .insert(ledgerTransactions)
      .values({
        idempotencyKey: posting.idempotencyKey,
        kind: posting.kind,
        description: posting.description,
        metadata: posting.metadata,
        contentHash,
      })
      .onConflictDoNothing({ target: ledgerTransactions.idempotencyKey })
      .returning();
    if (inserted === undefined) {
      const concurrent = (await findTransaction(tx, posting.idempotencyKey)) as StoredTransaction;
      return replayTransaction(concurrent, contentHash);
    }

    // Every account is in tokens (the check ledger_accounts_currency_check), so the entries of
    // a posting always add up in one currency. A second currency needs a check here first.
    checkUserBalances(accounts, posting.entries);

    await tx.insert(ledgerEntries).values(
      posting.entries.map((entry) => ({
        transactionId: inserted.id,
        accountId: entry.accountId,
        amount: entry.amount,
      })),
    );
    for (const entry of posting.entries) {
      await tx
        .update(ledgerAccounts)
        .set({
          balance: sql`${ledgerAccounts.balance} + ${entry.amount}`,
          updatedAt: sql`now()`,
        })
        .where(eq(ledgerAccounts.id, entry.accountId));
    }

    logger.debug("Posted ledger transaction {transactionId} ({kind}) with key {idempotencyKey}", {
      transactionId: inserted.id,
      kind: posting.kind,
      idempotencyKey: posting.idempotencyKey,
    });
    return {
      id: inserted.id,
      idempotencyKey: inserted.idempotencyKey,
      kind: inserted.kind,
      description: inserted.description,
      metadata: inserted.metadata as Record<string, JsonValue>,
      createdAt: inserted.createdAt,
      entries: posting.entries,
      replayed: false,
    };
  });
}

/** A stored transaction row with its entries. */
interface StoredTransaction extends Omit<PostedTransaction, "replayed"> {
  contentHash: string;
}

/** Returns the transaction stored under `idempotencyKey`, with its entries. */
export async function findTransaction(
  db: DatabaseLike,
  idempotencyKey: string,
): Promise<StoredTransaction | undefined> {
  const [row] = await db
    .select()
    .from(ledgerTransactions)
    .where(eq(ledgerTransactions.idempotencyKey, idempotencyKey));
  if (row === undefined) return undefined;

  const entries = await db
    .select({ accountId: ledgerEntries.accountId, amount: ledgerEntries.amount })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.transactionId, row.id))
    .orderBy(asc(ledgerEntries.accountId));
  return {
    id: row.id,
    idempotencyKey: row.idempotencyKey,
    kind: row.kind,
    description: row.description,
    metadata: row.metadata as Record<string, JsonValue>,
    createdAt: row.createdAt,
    contentHash: row.contentHash,
    entries,
  };
}

/** Returns the stored transaction as a replay, or raises when the content differs. */
export function replayTransaction(
  stored: StoredTransaction,
  contentHash: string,
): PostedTransaction {
  if (stored.contentHash !== contentHash) {
    throw new IdempotencyConflictError(stored.idempotencyKey, stored.id);
  }
  const { contentHash: _, ...transaction } = stored;
  logger.debug("Replayed ledger transaction {transactionId} for key {idempotencyKey}", {
    transactionId: stored.id,
    idempotencyKey: stored.idempotencyKey,
  });
  return { ...transaction, replayed: true };
}

/**
 * Locks the accounts with `FOR UPDATE` in ascending id order and returns them. PostgreSQL takes
 * the row locks after the sort, so every posting locks its accounts in the same global order.
 */
export async function lockAccounts(
  db: DatabaseLike,
  accountIds: readonly number[],
): Promise<LedgerAccount[]> {
  const accounts = await db
    .select()
    .from(ledgerAccounts)
    .where(inArray(ledgerAccounts.id, [...accountIds]))
    .orderBy(asc(ledgerAccounts.id))
    .for("update");
  if (accounts.length < new Set(accountIds).size) {
    const found = new Set(accounts.map((account) => account.id));
    throw new LedgerAccountNotFoundError(accountIds.filter((id) => !found.has(id)));
  }
  return accounts;
}

/**
 * Raises {@link InsufficientFundsError} when an entry would take a user account below zero.
 * The table's CHECK constraint would reject the update too, but without the amounts.
 */
function checkUserBalances(
  accounts: readonly LedgerAccount[],
  entries: readonly PostingEntry[],
): void {
  const byId = new Map(accounts.map((account) => [account.id, account]));
  for (const entry of entries) {
    const account = byId.get(entry.accountId) as LedgerAccount;
    if (account.ownerKind === "user" && account.balance + entry.amount < 0n) {
      throw new InsufficientFundsError(
        account.ownerId as string,
        account.balance,
        -entry.amount,
        `account ${account.id} (${account.kind})`,
      );
    }
  }
}
