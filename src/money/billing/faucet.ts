/**
 * The faucet: the administrator grants free tokens to all or chosen users. Granted tokens go to
 * each user's `user_free` account from the node's `faucet` account, so they are spent first and
 * expire with the other free tokens at the next monthly allowance.
 */
import type { DatabaseLike } from "../../db/client.ts";
import { openSystemAccount, openUserAccounts, postTransaction } from "../ledger/index.ts";

/** Returns the ledger idempotency key of one user's grant in the faucet call `callKey`. */
export function faucetPostingKey(callKey: string, userId: string): string {
  return `faucet:${callKey}:${userId}`;
}

export interface FaucetRequest {
  /** Idempotency key of the call, chosen by the caller; a retry with it grants nothing twice. */
  callKey: string;
  userIds: readonly string[];
  tokens: bigint;
  reason: string;
}

export interface FaucetGrant {
  userId: string;
  transactionId: number;
  /** True when an earlier call with the same key posted this grant and this call wrote nothing. */
  replayed: boolean;
}

/**
 * Credits `tokens` free tokens to each user, one posting per user with the key
 * `faucet:<callKey>:<user>`. A repeated call with the same key and content replays the postings.
 * The same key with other tokens or reason raises the ledger's `IdempotencyConflictError`.
 */
export async function grantFaucetTokens(
  db: DatabaseLike,
  request: FaucetRequest,
): Promise<FaucetGrant[]> {
  if (request.tokens <= 0n) {
    throw new RangeError(`Invalid token amount ${request.tokens}: it must be above 0`);
  }
  const faucet = await openSystemAccount(db, "faucet");
  const grants: FaucetGrant[] = [];
  for (const userId of request.userIds) {
    const { free } = await openUserAccounts(db, userId);
    const posted = await postTransaction(db, {
      idempotencyKey: faucetPostingKey(request.callKey, userId),
      kind: "faucet",
      description: request.reason,
      metadata: { callKey: request.callKey },
      entries: [
        { accountId: faucet.id, amount: -request.tokens },
        { accountId: free.id, amount: request.tokens },
      ],
    });
    grants.push({ userId, transactionId: posted.id, replayed: posted.replayed });
  }
  return grants;
}
