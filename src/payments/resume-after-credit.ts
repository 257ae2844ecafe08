/**
 * Resuming a user's stopped Units as soon as a payment credits tokens, so the user does not wait
 * for the billing job's next check.
 */
import { resumeUnits, type StoppingDependencies } from "../billing/stopping.ts";
import type { DatabaseLike } from "../db/client.ts";
import { getNodeLogger } from "../logging.ts";
import {
  type NotificationResult,
  type PaymentProvider,
  type ReconciliationReport,
  reconcilePayments,
} from "../money/payments/index.ts";

const logger = getNodeLogger("money", "payments");

/** Called with the paying user after a payment notification credited tokens. */
export type PaymentCreditListener = (userId: string) => Promise<void>;

/**
 * Returns a listener that resumes the user's stopped Units. It logs a failure and does not raise
 * it, because the credit is already stored and the billing job resumes the Units within a minute.
 */
export function resumeUnitsOnCredit(dependencies: StoppingDependencies): PaymentCreditListener {
  return async (userId) => {
    try {
      const resumed = await resumeUnits(dependencies, userId);
      if (resumed.length > 0) {
        logger.info("Payment of user {userId} resumed {count} stopped Units", {
          userId,
          count: resumed.length,
        });
      }
    } catch (error) {
      logger.error(
        "Resuming the stopped Units of user {userId} after a payment failed; the billing job retries within a minute: {error}",
        { userId, error },
      );
    }
  };
}

/**
 * Calls `listener` when `result` is a credited payment. A redelivered payment
 * (`already_credited`) calls it too, in case the first delivery stopped before resuming.
 */
export async function notifyPaymentCredit(
  result: NotificationResult,
  listener: PaymentCreditListener,
): Promise<void> {
  if (result.kind !== "payment") return;
  const { outcome } = result;
  if (outcome.status === "credited" || outcome.status === "already_credited") {
    await listener(outcome.order.userId);
  }
}

/**
 * Runs one reconciliation of `provider` and calls `listener` for every user whose lost payment
 * it credited, so their Units resume at once instead of at the billing job's next check.
 */
export async function reconcileAndResume(
  db: DatabaseLike,
  provider: PaymentProvider<unknown>,
  listener: PaymentCreditListener | undefined,
): Promise<ReconciliationReport> {
  const report = await reconcilePayments(db, provider);
  if (listener !== undefined) {
    for (const userId of report.creditedUserIds) await listener(userId);
  }
  return report;
}
