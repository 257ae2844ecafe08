/** A user's ledger history, newest transaction first, in pages. */
import { and, desc, eq, gte, inArray, lt, sql } from "drizzle-orm";
import type { Database, DatabaseLike } from "../../db/client.ts";
import {
  ledgerAccounts,
  ledgerEntries,
  ledgerTransactions,
  type UserAccountKind,
} from "../../db/schema/index.ts";
import { readUserBalances } from "./accounts.ts";
import { InvalidLedgerRequestError } from "./errors.ts";
import { type JsonValue, parseUserId } from "./validation.ts";

export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 500;

/** One transaction as its user sees it: only the entries of that user's accounts. */
export interface HistoryItem {
  transactionId: number;
  createdAt: Date;
  kind: string;
  description: string | null;
  metadata: Record<string, JsonValue>;
  /** The change of each of the user's accounts that the transaction touched. */
  changes: { accountKind: UserAccountKind; amount: bigint }[];
  /** The net change of the user's tokens, free and paid together. */
  amount: bigint;
}

export interface HistoryPage {
  items: HistoryItem[];
  /** Pass as `after` to read the next page; null on the last page. */
  nextAfter: number | null;
}

export interface HistoryQuery {
  /** Returns transactions with ids below this one; the `nextAfter` of the previous page. */
  after?: number | undefined;
  limit?: number | undefined;
}

/** Lists the transactions that touched the user's accounts, newest first. */
export async function listUserHistory(
  db: DatabaseLike,
  userId: string,
  query: HistoryQuery = {},
): Promise<HistoryPage> {
  const id = parseUserId(userId);
  const limit = query.limit ?? HISTORY_DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_MAX_LIMIT) {
    throw new InvalidLedgerRequestError(
      "limit",
      `${limit} is not an integer from 1 to ${HISTORY_MAX_LIMIT}`,
    );
  }
  if (query.after !== undefined && (!Number.isSafeInteger(query.after) || query.after < 1)) {
    throw new InvalidLedgerRequestError(
      "after",
      `${query.after} is not a transaction id: pass the nextAfter of the previous page`,
    );
  }

  const accounts = await db
    .select({ id: ledgerAccounts.id, kind: ledgerAccounts.kind })
    .from(ledgerAccounts)
    .where(and(eq(ledgerAccounts.ownerKind, "user"), eq(ledgerAccounts.ownerId, id)));
  if (accounts.length === 0) return { items: [], nextAfter: null };
  const accountKinds = new Map(accounts.map((account) => [account.id, account.kind]));

  const conditions = [inArray(ledgerEntries.accountId, [...accountKinds.keys()])];
  if (query.after !== undefined) conditions.push(lt(ledgerEntries.transactionId, query.after));
  const entries = await db
    .select({
      transactionId: ledgerEntries.transactionId,
      accountId: ledgerEntries.accountId,
      amount: ledgerEntries.amount,
    })
    .from(ledgerEntries)
    .where(
      and(
        inArray(ledgerEntries.accountId, [...accountKinds.keys()]),
        inArray(
          ledgerEntries.transactionId,
          db
            .selectDistinct({ id: ledgerEntries.transactionId })
            .from(ledgerEntries)
            .where(and(...conditions))
            .orderBy(desc(ledgerEntries.transactionId))
            .limit(limit + 1),
        ),
      ),
    )
    .orderBy(desc(ledgerEntries.transactionId), ledgerEntries.accountId);

  // NOTE: ids come from a sequence, so a posting that commits after this read with an id below
  // `after` is not on any later page. A new read from the first page shows it.
  const transactionIds = [...new Set(entries.map((entry) => entry.transactionId))];
  const pageIds = transactionIds.slice(0, limit);
  if (pageIds.length === 0) return { items: [], nextAfter: null };

  const transactions = await db
    .select()
    .from(ledgerTransactions)
    .where(inArray(ledgerTransactions.id, pageIds))
    .orderBy(desc(ledgerTransactions.id));

  const items = transactions.map((transaction): HistoryItem => {
    const changes = entries
      .filter((entry) => entry.transactionId === transaction.id)
      .map((entry) => ({
        accountKind: accountKinds.get(entry.accountId) as UserAccountKind,
        amount: entry.amount,
      }));
    return {
      transactionId: transaction.id,
      createdAt: transaction.createdAt,
      kind: transaction.kind,
      description: transaction.description,
      metadata: transaction.metadata as Record<string, JsonValue>,
      changes,
      amount: changes.reduce((total, change) => total + change.amount, 0n),
    };
  });

  const hasMore = transactionIds.length > limit;
  return { items, nextAfter: hasMore ? (pageIds.at(-1) as number) : null };
}

/** A history item with the user's tokens, free and paid together, right after it. */
export interface LedgerItem extends HistoryItem {
  balanceAfter: bigint;
}

/** A user's balance and one page of their history, read from one snapshot. */
export interface UserLedger {
  free: bigint;
  paid: bigint;
  items: LedgerItem[];
  /** Pass as `after` to read the next page; null on the last page. */
  nextAfter: number | null;
}

/**
 * Reads the user's free and paid tokens and one page of their history in one REPEATABLE READ
 * snapshot, so a concurrent posting cannot make `balanceAfter` disagree with the balance.
 * `balanceAfter` is the balance minus the amounts of the user's transactions with higher ids.
 * Raises {@link InvalidLedgerRequestError} like {@link listUserHistory}.
 */
export async function readUserLedger(
  db: Database,
  userId: string,
  query: HistoryQuery = {},
): Promise<UserLedger> {
  return await db.transaction(
    async (tx) => {
      const page = await listUserHistory(tx, userId, query);
      const { free, paid, accountIds } = await readUserBalances(tx, userId);

      // The items of a later page come after the newer transactions, whose sum is subtracted.
      let balance = free + paid;
      if (query.after !== undefined && page.items.length > 0) {
        const [newer] = await tx
          .select({ total: sql<string>`coalesce(sum(${ledgerEntries.amount}), 0)` })
          .from(ledgerEntries)
          .where(
            and(
              inArray(ledgerEntries.accountId, accountIds),
              gte(ledgerEntries.transactionId, query.after),
            ),
          );
        balance -= BigInt((newer as { total: string }).total);
      }
      const items = page.items.map((item): LedgerItem => {
        const balanceAfter = balance;
        balance -= item.amount;
        return { ...item, balanceAfter };
      });
      return { free, paid, items, nextAfter: page.nextAfter };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
