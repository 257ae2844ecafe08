/**
 * Retrying a billing charge that lost a race. `chargeUser` reads the balance before it spends,
 * so a concurrent spend of the same user, or a second delivery of the same charge, can make it
 * raise instead of charging. The same idempotency key is charged again from the new balance.
 */
import type { DatabaseLike } from "../db/client.ts";
import { type ChargeOutcome, type ChargeRequest, chargeUser } from "../money/billing/index.ts";
import { IdempotencyConflictError, InsufficientFundsError } from "../money/ledger/index.ts";

/** Attempts of one charge within one billing run, the first one included. */
export const MAX_CHARGE_ATTEMPTS = 3;

/**
 * Returns whether `error` from `chargeUser` comes from a race that another attempt with the same
 * key resolves. `InsufficientFundsError`: the balance shrank between the read and the spend.
 * `IdempotencyConflictError`: another delivery of the same charge posted a different split first.
 */
export function isRetryableChargeError(error: unknown): boolean {
  return error instanceof InsufficientFundsError || error instanceof IdempotencyConflictError;
}

/** The outcome of a charge and the attempts it took. */
export interface RetriedCharge {
  outcome: ChargeOutcome;
  attempts: number;
}

/**
 * Charges `request` with `chargeUser`, trying again up to `maxAttempts` times in all while it
 * raises a retryable error. Raises the last error when every attempt failed, or the first error
 * that is not retryable. `onRetry` is called before each further attempt.
 */
export async function chargeWithRetry(
  db: DatabaseLike,
  request: ChargeRequest,
  maxAttempts: number,
  onRetry: (attempt: number, error: unknown) => void = () => {},
): Promise<RetriedCharge> {
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(`Invalid maxAttempts ${maxAttempts}: expected a whole number, 1 or more`);
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return { outcome: await chargeUser(db, request), attempts: attempt };
    } catch (error) {
      if (attempt >= maxAttempts || !isRetryableChargeError(error)) throw error;
      onRetry(attempt, error);
    }
  }
}
