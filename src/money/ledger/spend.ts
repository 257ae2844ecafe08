/** Charging a user: free tokens are spent first, then paid tokens. */

import type { DatabaseLike } from "../../db/client.ts";
import { openSystemAccount, openUserAccounts } from "./accounts.ts";
import { hashJson } from "./content-hash.ts";
import { InsufficientFundsError } from "./errors.ts";
import {
  findTransaction,
  lockAccounts,
  type PostedTransaction,
  replayTransaction,
  writePosting,
} from "./post.ts";
import {
  type JsonValue,
  type PostingEntry,
  parseIdempotencyKey,
  parsePositiveAmount,
  parsePostingRequest,
  parseUserId,
} from "./validation.ts";

/** Description of a spend: its transaction kind (`usage` by default), text and metadata. */
export interface SpendDetails {
  kind?: string;
  description?: string;
  metadata?: Record<string, JsonValue>;
}

/**
 * Takes `amount` minor units from the user, free tokens first and paid tokens for the rest, and
 * credits the node's `revenue_usage` account, in one transaction.
 *
 * Idempotent by `idempotencyKey` like `postTransaction`. A replay is matched on the request
 * (user, amount and details), not on the split, because the split depends on the balances at the
 * first call. Raises {@link InsufficientFundsError} and writes nothing when free and paid tokens
 * together are less than `amount`.
 */
export async function spendTokens(
  db: DatabaseLike,
  userId: string,
  amount: bigint,
  idempotencyKey: string,
  details: SpendDetails = {},
): Promise<PostedTransaction> {
  const id = parseUserId(userId);
  const positiveAmount = parsePositiveAmount(amount);
  const key = parseIdempotencyKey(idempotencyKey);
  const kind = details.kind ?? "usage";
  const requestHash = hashJson({
    spend: {
      userId: id,
      amount: positiveAmount.toString(),
      kind,
      description: details.description ?? null,
      metadata: details.metadata ?? {},
    },
  });

  const earlier = await findTransaction(db, key);
  if (earlier !== undefined) return replayTransaction(earlier, requestHash);

  return await db.transaction(async (tx) => {
    const { free, paid } = await openUserAccounts(tx, id);
    const revenue = await openSystemAccount(tx, "revenue_usage");

    // All three accounts are locked at once, in the same id order as every posting, so a spend
    // cannot deadlock with a posting that touches the revenue account. Reading the balances under
    // the lock keeps the split from going stale, and a spend with the same key that committed
    // while this one waited is found here.
    // NOTE: every spend locks the one revenue_usage row, so spends of all users run one at a
    // time: about 230 charges/s on two cores, an hourly run of 50,000 charges in 3.5 minutes
    // (`npm run bench:billing`, docs/benchmarks.md). Sharding that account is the next step.
    const locked = await lockAccounts(tx, [free.id, paid.id, revenue.id]);
    const balances = new Map(locked.map((account) => [account.id, account.balance]));
    const concurrent = await findTransaction(tx, key);
    if (concurrent !== undefined) return replayTransaction(concurrent, requestHash);

    const freeBalance = balances.get(free.id) as bigint;
    const paidBalance = balances.get(paid.id) as bigint;
    if (freeBalance + paidBalance < positiveAmount) {
      throw new InsufficientFundsError(
        id,
        freeBalance + paidBalance,
        positiveAmount,
        `the free and paid tokens (${freeBalance} free, ${paidBalance} paid)`,
      );
    }

    // biome-ignore lint/complexity/useMathMinMax: Math.min does not accept bigint.
    const fromFree = freeBalance < positiveAmount ? freeBalance : positiveAmount;
    const fromPaid = positiveAmount - fromFree;
    const entries: PostingEntry[] = [{ accountId: revenue.id, amount: positiveAmount }];
    if (fromFree > 0n) entries.push({ accountId: free.id, amount: -fromFree });
    if (fromPaid > 0n) entries.push({ accountId: paid.id, amount: -fromPaid });

    const posting = parsePostingRequest({
      idempotencyKey: key,
      kind,
      description: details.description,
      metadata: details.metadata,
      entries,
    });
    return await writePosting(tx, posting, requestHash);
  });
}
