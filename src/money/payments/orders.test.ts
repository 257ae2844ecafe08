import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { type PaymentProviderId, paymentOrders } from "../../db/schema/index.ts";
import {
  countPostings,
  createUser,
  mismatchKinds,
  orderState,
  paidBalance,
} from "../../payments/test-support.ts";
import { spendTokens, verifyLedger } from "../ledger/index.ts";
import {
  InvalidPaymentRequestError,
  PaymentOrderNotFoundError,
  PaymentOrderStateError,
} from "./errors.ts";
import {
  type ConfirmedPayment,
  confirmPayment,
  createOrder,
  expireOrders,
  findOrder,
  refundOrder,
} from "./orders.ts";
import type { PaymentProvider, ProviderTransaction } from "./provider.ts";
import { reconcilePayments } from "./reconcile.ts";

let database: MoneyTestDatabase;
let db: Database;

beforeAll(async () => {
  database = await openMoneyTestDatabase("payments_orders");
  db = database.db;
});

afterAll(async () => {
  await database.close();
});

async function newOrder(provider: PaymentProviderId = "cryptopay", tokens = 10n) {
  const userId = await createUser(db);
  const order = await createOrder(db, {
    userId,
    provider,
    tokens,
    price: { amount: 25n, currency: "USDT", scale: 1 },
    expiresAt: new Date(Date.now() + 60_000),
    payerRef: null,
  });
  return { userId, order };
}

function paymentFor(orderId: string | null, overrides: Partial<ConfirmedPayment> = {}) {
  return {
    provider: "cryptopay" as const,
    orderId,
    providerPaymentId: `pay-${randomUUID()}`,
    providerInvoiceId: null,
    amount: "2.5",
    currency: "USDT",
    payerRef: null,
    ...overrides,
  };
}

/** Returns a provider that lists `transactions` and supports nothing else. */
function listingProvider(transactions: ProviderTransaction[]): PaymentProvider<never> {
  return {
    id: "cryptopay",
    createInvoice: () => Promise.reject(new Error("not used")),
    handleNotification: () => Promise.reject(new Error("not used")),
    refund: () => Promise.reject(new Error("not used")),
    async *listTransactions() {
      yield* transactions;
    },
  };
}

describe("createOrder", () => {
  it("rejects invalid users", async () => {
    const request = {
      provider: "cryptopay" as const,
      tokens: 1n,
      price: { amount: 1n, currency: "USDT", scale: 0 },
      expiresAt: new Date(),
      payerRef: null,
    };
    await expect(createOrder(db, { ...request, userId: "nobody" })).rejects.toThrow(
      InvalidPaymentRequestError,
    );
    expect(await findOrder(db, "nobody")).toBeUndefined();
  });
});

describe("confirmPayment", () => {
  it("credits at the order's scale", async () => {
    const { userId, order } = await newOrder();
    const outcome = await confirmPayment(db, paymentFor(order.id, { amount: "2.50" }));
    expect(outcome.status).toBe("credited");
    expect(await paidBalance(db, userId)).toBe(10n);
  });

  it("rejects payments that do not fit", async () => {
    const { order: paid } = await newOrder();
    const first = paymentFor(paid.id);
    await confirmPayment(db, first);
    const { order: invoiced } = await newOrder();
    await db
      .update(paymentOrders)
      .set({ providerInvoiceId: "inv-1" })
      .where(eq(paymentOrders.id, invoiced.id));
    const { order: stars } = await newOrder("telegram_stars");
    const { order: plain } = await newOrder();

    const cases = [
      { payment: paymentFor(null), kind: "unknown_order" },
      { payment: paymentFor(randomUUID()), kind: "unknown_order" },
      { payment: paymentFor(stars.id), kind: "provider_mismatch" },
      { payment: paymentFor(paid.id), kind: "duplicate_payment" },
      {
        payment: paymentFor(invoiced.id, { providerInvoiceId: "inv-2" }),
        kind: "provider_mismatch",
      },
      { payment: paymentFor(plain.id, { currency: "TON" }), kind: "amount_mismatch" },
      { payment: paymentFor(plain.id, { amount: "2.4" }), kind: "amount_mismatch" },
    ];
    for (const testCase of cases) {
      const outcome = await confirmPayment(db, testCase.payment);
      expect(outcome.status, testCase.kind).toBe("rejected");
      expect(await mismatchKinds(db, testCase.payment.providerPaymentId)).toEqual([testCase.kind]);
    }
    expect(await orderState(db, plain.id)).toBe("created");

    const matching = await confirmPayment(
      db,
      paymentFor(invoiced.id, { providerInvoiceId: "inv-1" }),
    );
    expect(matching.status).toBe("credited");
  });

  it("stores the invoice id it learns", async () => {
    const { order } = await newOrder();
    await confirmPayment(db, paymentFor(order.id, { providerInvoiceId: "inv-late" }));
    expect((await findOrder(db, order.id))?.providerInvoiceId).toBe("inv-late");
  });

  it("credits an expired order", async () => {
    const { userId, order } = await newOrder();
    await db
      .update(paymentOrders)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(paymentOrders.id, order.id));
    expect(await expireOrders(db, new Date())).toBeGreaterThanOrEqual(1);
    expect(await orderState(db, order.id)).toBe("expired");

    expect((await confirmPayment(db, paymentFor(order.id))).status).toBe("credited");
    expect(await paidBalance(db, userId)).toBe(10n);
  });
});

describe("refundOrder", () => {
  it("rejects orders it cannot refund", async () => {
    const { order } = await newOrder();
    await expect(refundOrder(db, { provider: "cryptopay", orderId: "x" })).rejects.toThrow(
      PaymentOrderNotFoundError,
    );
    await expect(refundOrder(db, { provider: "cryptopay", orderId: randomUUID() })).rejects.toThrow(
      PaymentOrderNotFoundError,
    );
    await expect(
      refundOrder(db, { provider: "telegram_stars", orderId: order.id }),
    ).rejects.toThrow(PaymentOrderNotFoundError);
    await expect(refundOrder(db, { provider: "cryptopay", orderId: order.id })).rejects.toThrow(
      /Cannot refund payment order .*: it is created/,
    );
  });
});

describe("reconcilePayments", () => {
  it("flags refunds it cannot apply", async () => {
    const { userId, order } = await newOrder();
    const payment = paymentFor(order.id);
    await confirmPayment(db, payment);
    await spendTokens(db, userId, 5n, `usage-${order.id}`);
    const refund = (providerPaymentId: string): ProviderTransaction => ({
      kind: "refund",
      providerPaymentId,
      providerInvoiceId: null,
      orderId: null,
      amount: "2.5",
      currency: "USDT",
      payerRef: null,
    });
    const listed: ProviderTransaction = {
      ...refund(payment.providerPaymentId),
      kind: "payment",
      orderId: order.id,
    };

    const report = await reconcilePayments(
      db,
      listingProvider([listed, refund(payment.providerPaymentId), refund("pay-unknown")]),
    );

    expect(report.refunds).toBe(2);
    expect(report.refundsApplied).toBe(0);
    expect(await mismatchKinds(db, payment.providerPaymentId)).toEqual(["refund_not_applied"]);
    expect(await mismatchKinds(db, "pay-unknown")).toEqual(["refund_not_applied"]);
    expect(await orderState(db, order.id)).toBe("paid");
    await verifyLedger(db);
  });

  it("lists each credited user once", async () => {
    const { userId, order } = await newOrder();
    const second = await createOrder(db, {
      userId,
      provider: "cryptopay",
      tokens: 10n,
      price: { amount: 25n, currency: "USDT", scale: 1 },
      expiresAt: new Date(Date.now() + 60_000),
      payerRef: null,
    });
    const other = await newOrder();
    const lost = [order, second, other.order].map(
      (lostOrder): ProviderTransaction => ({ ...paymentFor(lostOrder.id), kind: "payment" }),
    );

    const report = await reconcilePayments(db, listingProvider(lost));

    expect(report.credited).toBe(3);
    expect(report.creditedUserIds).toEqual([userId, other.userId]);
    expect(await paidBalance(db, userId)).toBe(20n);
  });

  it("flags a credit that is not the payment's", async () => {
    const { order: other } = await newOrder();
    const otherPayment = paymentFor(other.id);
    const credited = await confirmPayment(db, otherPayment);
    const { order } = await newOrder();
    await db
      .update(paymentOrders)
      .set({
        state: "paid",
        providerPaymentId: "pay-linked-wrong",
        creditTransactionId: credited.status === "credited" ? credited.transactionId : 0,
        paidAt: new Date(),
      })
      .where(eq(paymentOrders.id, order.id));

    await reconcilePayments(db, listingProvider([]));

    expect(await mismatchKinds(db, "pay-linked-wrong")).toEqual([
      "ledger_missing",
      "missing_at_provider",
    ]);
    expect(await countPostings(db, "payment:cryptopay:pay-linked-wrong")).toBe(0);
  });

  it("stops on an order in an unexpected state", async () => {
    const { order } = await newOrder();
    await db
      .update(paymentOrders)
      .set({ state: "expired", providerPaymentId: "pay-odd" })
      .where(eq(paymentOrders.id, order.id));
    const refund: ProviderTransaction = {
      kind: "refund",
      providerPaymentId: "pay-odd",
      providerInvoiceId: null,
      orderId: null,
      amount: "2.5",
      currency: "USDT",
      payerRef: null,
    };

    await expect(reconcilePayments(db, listingProvider([refund]))).rejects.toThrow(
      PaymentOrderStateError,
    );
  });
});
