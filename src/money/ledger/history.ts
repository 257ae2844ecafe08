/** A user's ledger history, newest transaction first, in pages. */
import { and, desc, eq, inArray, lt } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import {
  ledgerAccounts,
  ledgerEntries,
  ledgerTransactions,
  type UserAccountKind,
} from "../../db/schema/index.ts";
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
