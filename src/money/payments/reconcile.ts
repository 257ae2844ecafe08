/**
 * Reconciliation: compares a provider's own list of transactions with `payment_orders` and the
 * ledger, credits confirmed payments whose notification was lost, applies refunds the provider
 * made, and records every mismatch.
 */
import { and, eq, inArray } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import { ledgerTransactions, paymentOrders } from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";
import { InsufficientFundsError } from "../ledger/index.ts";
import { recordMismatch } from "./mismatches.ts";
import { confirmPayment, expireOrders, paymentPostingKey, refundOrder } from "./orders.ts";
import type { PaymentProvider, ProviderTransaction } from "./provider.ts";

const logger = getNodeLogger("money", "payments");

export interface ReconciliationReport {
  provider: string;
  /** Orders moved to `expired` before the comparison. */
  expired: number;
  payments: number;
  refunds: number;
  /** Payments credited by this run because no notification had credited them. */
  credited: number;
  /** Users whose payments this run credited, once each, so the node can resume their Units. */
  creditedUserIds: string[];
  /** Provider refunds recorded by this run. */
  refundsApplied: number;
  mismatches: number;
}

/**
 * Runs one reconciliation of `provider`. Safe to run at any time and in parallel with
 * notifications, because crediting and refunding are idempotent by the provider's payment id.
 *
 * NOTE: every run reads the provider's whole list and every paid order of the provider. That is
 * fine for thousands of payments; a node with far more would need a time window.
 */
export async function reconcilePayments(
  db: DatabaseLike,
  provider: PaymentProvider<unknown>,
  now: Date = new Date(),
): Promise<ReconciliationReport> {
  const report: ReconciliationReport = {
    provider: provider.id,
    expired: await expireOrders(db, now),
    payments: 0,
    refunds: 0,
    credited: 0,
    creditedUserIds: [],
    refundsApplied: 0,
    mismatches: 0,
  };
  const listed = new Set<string>();

  for await (const transaction of provider.listTransactions()) {
    if (transaction.kind === "payment") {
      report.payments += 1;
      listed.add(transaction.providerPaymentId);
      await reconcilePayment(db, provider, transaction, report);
    } else {
      report.refunds += 1;
      await reconcileRefund(db, provider, transaction, report);
    }
  }

  await checkPaidOrders(db, provider, listed, report);
  logger.info(
    "Reconciled {provider}: {payments} payments, {refunds} refunds, {credited} credited late, " +
      "{refundsApplied} refunds applied, {mismatches} mismatches, {expired} orders expired",
    { ...report },
  );
  return report;
}

async function reconcilePayment(
  db: DatabaseLike,
  provider: PaymentProvider<unknown>,
  transaction: ProviderTransaction,
  report: ReconciliationReport,
): Promise<void> {
  const outcome = await confirmPayment(db, { provider: provider.id, ...transaction });
  if (outcome.status === "credited") {
    report.credited += 1;
    if (!report.creditedUserIds.includes(outcome.order.userId)) {
      report.creditedUserIds.push(outcome.order.userId);
    }
    logger.warning(
      "Reconciliation credited payment {providerPaymentId} of order {orderId}, which no notification had credited",
      { providerPaymentId: transaction.providerPaymentId, orderId: outcome.order.id },
    );
  } else if (outcome.status === "rejected") {
    report.mismatches += 1;
  }
}

async function reconcileRefund(
  db: DatabaseLike,
  provider: PaymentProvider<unknown>,
  transaction: ProviderTransaction,
  report: ReconciliationReport,
): Promise<void> {
  const [order] = await db
    .select()
    .from(paymentOrders)
    .where(
      and(
        eq(paymentOrders.provider, provider.id),
        eq(paymentOrders.providerPaymentId, transaction.providerPaymentId),
      ),
    );
  const mismatch = async (reason: string, orderId: string | null) => {
    report.mismatches += 1;
    await recordMismatch(db, {
      provider: provider.id,
      kind: "refund_not_applied",
      orderId,
      providerPaymentId: transaction.providerPaymentId,
      details: { reason, amount: transaction.amount, currency: transaction.currency },
    });
  };
  if (order === undefined) {
    await mismatch("the provider refunded a payment that no order has", null);
    return;
  }
  // Payment handling stores a payment id only when it marks the order paid. refundOrder raises
  // for any other state, and reconciliation stops on that error instead of hiding it.
  if (order.state === "refunded") return;
  try {
    await refundOrder(db, { provider: provider.id, orderId: order.id });
    report.refundsApplied += 1;
  } catch (error) {
    if (!(error instanceof InsufficientFundsError)) throw error;
    await mismatch(`the user has spent the refunded tokens: ${error.message}`, order.id);
  }
}

/** Records paid orders that the provider does not list, and paid orders without their credit. */
async function checkPaidOrders(
  db: DatabaseLike,
  provider: PaymentProvider<unknown>,
  listed: ReadonlySet<string>,
  report: ReconciliationReport,
): Promise<void> {
  const orders = await db
    .select({
      id: paymentOrders.id,
      providerPaymentId: paymentOrders.providerPaymentId,
      creditKey: ledgerTransactions.idempotencyKey,
    })
    .from(paymentOrders)
    .leftJoin(ledgerTransactions, eq(ledgerTransactions.id, paymentOrders.creditTransactionId))
    .where(
      and(
        eq(paymentOrders.provider, provider.id),
        inArray(paymentOrders.state, ["paid", "refunded"]),
      ),
    );
  for (const order of orders) {
    const paymentId = order.providerPaymentId as string;
    if (!listed.has(paymentId)) {
      report.mismatches += 1;
      await recordMismatch(db, {
        provider: provider.id,
        kind: "missing_at_provider",
        orderId: order.id,
        providerPaymentId: paymentId,
        details: { reason: "the order is paid, but the provider does not list the payment" },
      });
    }
    if (order.creditKey !== paymentPostingKey(provider.id, paymentId)) {
      report.mismatches += 1;
      await recordMismatch(db, {
        provider: provider.id,
        kind: "ledger_missing",
        orderId: order.id,
        providerPaymentId: paymentId,
        details: {
          reason: "the order is paid, but its credit transaction is not the payment's posting",
          creditKey: order.creditKey,
        },
      });
    }
  }
}
