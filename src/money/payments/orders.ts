/**
 * Payment orders and the ledger postings that go with them. Every state change of an order and
 * its posting commit in one database transaction, with the order row locked, so a crash leaves
 * either both or neither.
 */
import { and, eq, lte, sql } from "drizzle-orm";
import { z } from "zod";
import type { DatabaseLike } from "../../db/client.ts";
import {
  type PaymentOrder,
  type PaymentProviderId,
  paymentOrders,
  users,
} from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";
import { openSystemAccount, openUserAccounts, postTransaction } from "../ledger/index.ts";
import {
  InvalidPaymentRequestError,
  PaymentOrderNotFoundError,
  PaymentOrderStateError,
} from "./errors.ts";
import { recordMismatch } from "./mismatches.ts";
import { type Price, parseAmountAtScale } from "./price.ts";

const logger = getNodeLogger("money", "payments");

/** Returns true when `value` can be an order id (a UUID), so a lookup cannot fail on its type. */
export function isOrderId(value: string | null): value is string {
  return value !== null && z.guid().safeParse(value).success;
}

/** Returns the ledger idempotency key of the credit of a provider's payment. */
export function paymentPostingKey(provider: PaymentProviderId, providerPaymentId: string): string {
  return `payment:${provider}:${providerPaymentId}`;
}

/** Returns the ledger idempotency key of the refund of a provider's payment. */
export function refundPostingKey(provider: PaymentProviderId, providerPaymentId: string): string {
  return `refund:${provider}:${providerPaymentId}`;
}

/** Raises {@link InvalidPaymentRequestError} unless `tokens` is from 1 to `maxTokens`. */
export function checkOrderTokens(tokens: bigint, maxTokens: bigint): void {
  if (tokens < 1n || tokens > maxTokens) {
    throw new InvalidPaymentRequestError(
      "tokens",
      `${tokens} is not from 1 to ${maxTokens}, the tokens one order may buy`,
    );
  }
}

export interface NewOrder {
  userId: string;
  provider: PaymentProviderId;
  tokens: bigint;
  price: Price;
  expiresAt: Date;
  /** The only payer the provider may accept, such as a Telegram user id; null for anyone. */
  payerRef: string | null;
}

/** Stores a new order in state `created`. Raises {@link InvalidPaymentRequestError} for an unknown user. */
export async function createOrder(db: DatabaseLike, order: NewOrder): Promise<PaymentOrder> {
  if (!isOrderId(order.userId)) {
    throw new InvalidPaymentRequestError("userId", `${JSON.stringify(order.userId)} is not a UUID`);
  }
  const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, order.userId));
  if (user === undefined) {
    throw new InvalidPaymentRequestError("userId", `no user has the id ${order.userId}`);
  }
  const [created] = await db
    .insert(paymentOrders)
    .values({
      userId: order.userId,
      provider: order.provider,
      tokens: order.tokens,
      priceAmount: order.price.amount,
      priceCurrency: order.price.currency,
      priceScale: order.price.scale,
      payerRef: order.payerRef,
      expiresAt: order.expiresAt,
    })
    .returning();
  return created as PaymentOrder;
}

/** Stores the provider's invoice id of an order. */
export async function recordInvoiceId(
  db: DatabaseLike,
  orderId: string,
  providerInvoiceId: string,
): Promise<void> {
  await db
    .update(paymentOrders)
    .set({ providerInvoiceId, updatedAt: sql`now()` })
    .where(eq(paymentOrders.id, orderId));
}

/** Moves a `created` order to `failed` because the provider rejected its invoice. */
export async function markOrderFailed(
  db: DatabaseLike,
  orderId: string,
  reason: string,
): Promise<void> {
  await db
    .update(paymentOrders)
    .set({ state: "failed", failureReason: reason, updatedAt: sql`now()` })
    .where(and(eq(paymentOrders.id, orderId), eq(paymentOrders.state, "created")));
}

/** Moves `created` orders whose invoice expired at or before `now` to `expired`. */
export async function expireOrders(db: DatabaseLike, now: Date): Promise<number> {
  const expired = await db
    .update(paymentOrders)
    .set({ state: "expired", updatedAt: sql`now()` })
    .where(and(eq(paymentOrders.state, "created"), lte(paymentOrders.expiresAt, now)))
    .returning({ id: paymentOrders.id });
  return expired.length;
}

/** Returns the order with `id`, or undefined. */
export async function findOrder(db: DatabaseLike, id: string): Promise<PaymentOrder | undefined> {
  if (!isOrderId(id)) return undefined;
  const [order] = await db.select().from(paymentOrders).where(eq(paymentOrders.id, id));
  return order;
}

/** Locks the order row until the transaction ends and returns it. */
export async function lockOrder(db: DatabaseLike, id: string): Promise<PaymentOrder | undefined> {
  const [order] = await db
    .select()
    .from(paymentOrders)
    .where(eq(paymentOrders.id, id))
    .for("update");
  return order;
}

/** A payment that the provider reports as completed. */
export interface ConfirmedPayment {
  provider: PaymentProviderId;
  /** The order id the invoice carried, or null when the payment carried none. */
  orderId: string | null;
  providerPaymentId: string;
  /** The provider's invoice id, checked against the order's when both are known. */
  providerInvoiceId: string | null;
  /** The paid amount as the provider writes it (a decimal in `currency` units). */
  amount: string;
  currency: string;
  payerRef: string | null;
}

export type ConfirmOutcome =
  | { status: "credited"; order: PaymentOrder; transactionId: number }
  | { status: "already_credited"; order: PaymentOrder }
  | { status: "rejected"; reason: string };

/**
 * Credits the order's tokens to the user's paid account for a payment the provider confirmed,
 * and marks the order paid, in one transaction.
 *
 * Idempotent by the provider's payment id: the order row is locked, so concurrent deliveries of
 * the same payment wait for each other, and a payment already applied returns
 * `already_credited`. The ledger posting's idempotency key contains the payment id as well. A
 * payment that does not fit its order (unknown order, other provider or invoice, other amount or
 * currency, a second payment of a paid order) credits nothing, and is logged and stored as a
 * mismatch. A payment of an expired order is credited, because the money arrived.
 */
export async function confirmPayment(
  db: DatabaseLike,
  payment: ConfirmedPayment,
): Promise<ConfirmOutcome> {
  // Mismatches are written through the caller's transaction: another connection would wait for
  // the lock on the order row that the foreign key check needs.
  const reject = async (
    executor: DatabaseLike,
    kind: Parameters<typeof recordMismatch>[1]["kind"],
    order: PaymentOrder | undefined,
    reason: string,
  ): Promise<ConfirmOutcome> => {
    await recordMismatch(executor, {
      provider: payment.provider,
      kind,
      orderId: order?.id ?? null,
      providerPaymentId: payment.providerPaymentId,
      details: {
        reason,
        payloadOrderId: payment.orderId,
        amount: payment.amount,
        currency: payment.currency,
      },
    });
    return { status: "rejected", reason };
  };

  if (!isOrderId(payment.orderId)) {
    return await reject(db, "unknown_order", undefined, "the payment carries no order id");
  }
  const orderId = payment.orderId;

  return await db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId);
    if (order === undefined) {
      return await reject(tx, "unknown_order", undefined, `no order has the id ${orderId}`);
    }
    if (order.provider !== payment.provider) {
      return await reject(tx, "provider_mismatch", order, `the order belongs to ${order.provider}`);
    }
    if (order.providerPaymentId === payment.providerPaymentId) {
      return { status: "already_credited", order };
    }
    if (order.providerPaymentId !== null) {
      return await reject(
        tx,
        "duplicate_payment",
        order,
        `the order was already paid by payment ${order.providerPaymentId}`,
      );
    }
    if (
      order.providerInvoiceId !== null &&
      payment.providerInvoiceId !== null &&
      order.providerInvoiceId !== payment.providerInvoiceId
    ) {
      return await reject(
        tx,
        "provider_mismatch",
        order,
        `the order has invoice ${order.providerInvoiceId}, not ${payment.providerInvoiceId}`,
      );
    }
    const paidAmount = parseAmountAtScale(payment.amount, order.priceScale);
    if (payment.currency !== order.priceCurrency || paidAmount !== order.priceAmount) {
      return await reject(
        tx,
        "amount_mismatch",
        order,
        `paid ${payment.amount} ${payment.currency}, but the order costs ` +
          `${order.priceAmount} minor units (scale ${order.priceScale}) of ${order.priceCurrency}`,
      );
    }

    const { paid } = await openUserAccounts(tx, order.userId);
    const clearing = await openSystemAccount(tx, "payments_clearing");
    const posted = await postTransaction(tx, {
      idempotencyKey: paymentPostingKey(order.provider, payment.providerPaymentId),
      kind: `payment.${order.provider}`,
      description: `Paid tokens of order ${order.id}`,
      metadata: { orderId: order.id, providerPaymentId: payment.providerPaymentId },
      entries: [
        { accountId: clearing.id, amount: -order.tokens },
        { accountId: paid.id, amount: order.tokens },
      ],
    });
    const [updated] = await tx
      .update(paymentOrders)
      .set({
        state: "paid",
        providerPaymentId: payment.providerPaymentId,
        providerInvoiceId: order.providerInvoiceId ?? payment.providerInvoiceId,
        payerRef: order.payerRef ?? payment.payerRef,
        creditTransactionId: posted.id,
        paidAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      .where(eq(paymentOrders.id, order.id))
      .returning();
    logger.info(
      "Credited {tokens} tokens to user {userId} for order {orderId}, payment {providerPaymentId} at {provider}",
      {
        tokens: order.tokens,
        userId: order.userId,
        orderId: order.id,
        providerPaymentId: payment.providerPaymentId,
        provider: order.provider,
      },
    );
    return { status: "credited", order: updated as PaymentOrder, transactionId: posted.id };
  });
}

export interface RefundRequest {
  provider: PaymentProviderId;
  orderId: string;
  /**
   * Returns the money at the provider. It runs after the reversing posting and before the
   * commit, so a failed provider call rolls the posting back. Omitted when the money was returned
   * outside the provider's API or the provider already reports the refund.
   */
  refundAtProvider?: (order: PaymentOrder) => Promise<void>;
}

export type RefundOutcome =
  | { status: "refunded"; order: PaymentOrder; transactionId: number }
  | { status: "already_refunded"; order: PaymentOrder };

/**
 * Refunds a paid order: posts a new transaction that takes the tokens back from the user's paid
 * account into the node's `refunds` account, returns the money at the provider, and marks the
 * order refunded, in one transaction. Postings are never edited.
 *
 * Raises {@link PaymentOrderNotFoundError}, {@link PaymentOrderStateError} for an order that is
 * not paid, and the ledger's `InsufficientFundsError` when the user has already spent the
 * tokens. A repeated refund returns `already_refunded`.
 */
export async function refundOrder(
  db: DatabaseLike,
  request: RefundRequest,
): Promise<RefundOutcome> {
  if (!isOrderId(request.orderId)) {
    throw new PaymentOrderNotFoundError(request.provider, request.orderId);
  }
  const orderId = request.orderId;
  return await db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId);
    if (order === undefined || order.provider !== request.provider) {
      throw new PaymentOrderNotFoundError(request.provider, orderId);
    }
    if (order.state === "refunded") return { status: "already_refunded", order };
    if (order.state !== "paid") throw new PaymentOrderStateError(order.id, order.state, "refund");

    const paymentId = order.providerPaymentId as string;
    const { paid } = await openUserAccounts(tx, order.userId);
    const refunds = await openSystemAccount(tx, "refunds");
    const posted = await postTransaction(tx, {
      idempotencyKey: refundPostingKey(order.provider, paymentId),
      kind: `refund.${order.provider}`,
      description: `Refund of order ${order.id}`,
      metadata: { orderId: order.id, providerPaymentId: paymentId },
      entries: [
        { accountId: paid.id, amount: -order.tokens },
        { accountId: refunds.id, amount: order.tokens },
      ],
    });
    await request.refundAtProvider?.(order);
    const [updated] = await tx
      .update(paymentOrders)
      .set({
        state: "refunded",
        refundTransactionId: posted.id,
        refundedAt: sql`now()`,
        updatedAt: sql`now()`,
      })
      .where(eq(paymentOrders.id, order.id))
      .returning();
    logger.info("Refunded order {orderId} of user {userId}: {tokens} tokens taken back", {
      orderId: order.id,
      userId: order.userId,
      tokens: order.tokens.toString(),
    });
    return { status: "refunded", order: updated as PaymentOrder, transactionId: posted.id };
  });
}
