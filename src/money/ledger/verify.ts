/** The ledger's integrity check, for tests, billing runs and operators. */
import { sql } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import { type AccountMismatch, LedgerIntegrityError, type TransactionMismatch } from "./errors.ts";

/** Counts of what {@link verifyLedger} checked. */
export interface LedgerVerification {
  accounts: number;
  transactions: number;
}

/**
 * Recomputes every account's balance from its entries and every transaction's sum, and raises
 * {@link LedgerIntegrityError} listing every account whose balance differs and every
 * transaction that does not have at least two entries summing to zero.
 *
 * Both checks read one REPEATABLE READ snapshot, so postings that commit meanwhile cannot show
 * up as mismatches. The cost is one full scan of `ledger_entries`.
 */
export async function verifyLedger(db: DatabaseLike): Promise<LedgerVerification> {
  return await db.transaction(
    async (tx) => {
      const accountRows = await tx.execute<{
        account_id: string;
        balance: string;
        entries_sum: string;
      }>(sql`
        select a.id as account_id, a.balance, coalesce(s.total, 0) as entries_sum
        from ledger_accounts a
        left join (
          select account_id, sum(amount) as total from ledger_entries group by account_id
        ) s on s.account_id = a.id
        where a.balance <> coalesce(s.total, 0)
        order by a.id
      `);
      const transactionRows = await tx.execute<{
        transaction_id: string;
        idempotency_key: string;
        entries_sum: string;
        entry_count: string;
      }>(sql`
        select t.id as transaction_id, t.idempotency_key,
          coalesce(sum(e.amount), 0) as entries_sum, count(e.account_id) as entry_count
        from ledger_transactions t
        left join ledger_entries e on e.transaction_id = t.id
        group by t.id
        having coalesce(sum(e.amount), 0) <> 0 or count(e.account_id) < 2
        order by t.id
      `);
      const counts = await tx.execute<{ accounts: string; transactions: string }>(sql`
        select (select count(*) from ledger_accounts) as accounts,
          (select count(*) from ledger_transactions) as transactions
      `);

      const accounts: AccountMismatch[] = accountRows.rows.map((row) => ({
        accountId: Number(row.account_id),
        balance: BigInt(row.balance),
        entriesSum: BigInt(row.entries_sum),
      }));
      const transactions: TransactionMismatch[] = transactionRows.rows.map((row) => ({
        transactionId: Number(row.transaction_id),
        idempotencyKey: row.idempotency_key,
        entriesSum: BigInt(row.entries_sum),
        entryCount: Number(row.entry_count),
      }));
      if (accounts.length > 0 || transactions.length > 0) {
        throw new LedgerIntegrityError(accounts, transactions);
      }

      const [count] = counts.rows as [{ accounts: string; transactions: string }];
      return { accounts: Number(count.accounts), transactions: Number(count.transactions) };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}
