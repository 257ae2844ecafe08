/**
 * The monthly free allowance: at the start of each UTC month every user's free tokens are set to
 * the allowance. What is left of the previous month expires, so free tokens are never carried
 * over.
 */
import type { DatabaseLike } from "../../db/client.ts";
import { openSystemAccount, openUserAccounts, postTransaction } from "../ledger/index.ts";
import { findTransaction, lockAccounts } from "../ledger/post.ts";
import type { PostingEntry } from "../ledger/validation.ts";

/** Returns the month of `time` as `yyyy-mm` in UTC. */
export function monthKey(time: Date): string {
  return time.toISOString().slice(0, 7);
}

/** Returns the ledger idempotency key of a user's allowance in a month. */
export function allowancePostingKey(userId: string, month: string): string {
  return `free:${userId}:${month}`;
}

export type AllowanceOutcome =
  | { status: "granted"; expired: bigint; granted: bigint; transactionId: number | null }
  | { status: "already_granted" };

/**
 * Sets the user's free tokens to `allowance` for `month` (`yyyy-mm`) in one posting with the key
 * `free:<user>:<month>`: the balance left expires to the `expired_free` account and the allowance
 * comes from the `free_allowance` account. Idempotent per user and month: the free account is
 * locked first, so a rerun or a second worker finds the posting and changes nothing. When the
 * balance is 0 and the allowance is 0 nothing is posted, and a rerun repeats that outcome.
 *
 * NOTE: months are not checked for order, so a grant of an earlier month that arrives after a
 * later one resets the free tokens to the earlier allowance. The billing job only grants the
 * current month. Every grant locks the one `free_allowance` and `expired_free` rows, so grants
 * of all users run one at a time, as spends do on `revenue_usage`.
 */
export async function grantMonthlyAllowance(
  db: DatabaseLike,
  userId: string,
  month: string,
  allowance: bigint,
): Promise<AllowanceOutcome> {
  if (!/^[0-9]{4}-(0[1-9]|1[0-2])$/.test(month)) {
    throw new RangeError(
      `Invalid month ${JSON.stringify(month)}: expected yyyy-mm, such as 2027-01`,
    );
  }
  if (allowance < 0n) {
    throw new RangeError(`Invalid allowance ${allowance}: it must be 0 or above`);
  }
  const key = allowancePostingKey(userId, month);

  return await db.transaction(async (tx) => {
    const { free } = await openUserAccounts(tx, userId);
    const source = await openSystemAccount(tx, "free_allowance");
    const expired = await openSystemAccount(tx, "expired_free");
    const locked = await lockAccounts(tx, [free.id, source.id, expired.id]);
    if ((await findTransaction(tx, key)) !== undefined) return { status: "already_granted" };

    const balance = locked.find((account) => account.id === free.id)?.balance as bigint;
    const entries: PostingEntry[] = [];
    if (balance !== allowance) entries.push({ accountId: free.id, amount: allowance - balance });
    if (balance > 0n) entries.push({ accountId: expired.id, amount: balance });
    if (allowance > 0n) entries.push({ accountId: source.id, amount: -allowance });
    // Expiring exactly the allowance and granting it again nets to nothing on the free account,
    // and the posting moves the tokens between the two system accounts.
    if (entries.length < 2)
      return { status: "granted", expired: 0n, granted: 0n, transactionId: null };

    const posted = await postTransaction(tx, {
      idempotencyKey: key,
      kind: "free_allowance",
      description: `Monthly free tokens of ${month}`,
      metadata: { month, expired: balance.toString(), granted: allowance.toString() },
      entries,
    });
    return { status: "granted", expired: balance, granted: allowance, transactionId: posted.id };
  });
}
