/**
 * Unit tests of the Telegram Stars provider: PGlite as the database and the fake Bot API served
 * in process through its `fetch` method. Updates go straight to `handleNotification`, so no bot
 * polls and no socket opens.
 */
import { randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { Api, type ApiClientOptions } from "grammy";
import type { StarTransaction, Update } from "grammy/types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FakeTelegramBotApi,
  type PaymentAttempt,
  type PayOptions,
} from "../../../test/fakes/telegram-bot-api.ts";
import { type MoneyTestDatabase, openMoneyTestDatabase } from "../../../test/money-database.ts";
import type { Database } from "../../db/client.ts";
import { paymentOrders } from "../../db/schema/index.ts";
import {
  countPostings,
  createUser,
  mismatchKinds,
  orderState,
  paidBalance,
} from "../../payments/test-support.ts";
import { InsufficientFundsError, spendTokens, verifyLedger } from "../ledger/index.ts";
import {
  InvalidPaymentRequestError,
  PaymentOrderNotFoundError,
  PaymentProviderError,
} from "./errors.ts";
import { createOrder } from "./orders.ts";
import type { NotificationResult } from "./provider.ts";
import { reconcilePayments } from "./reconcile.ts";
import {
  STAR_TRANSACTIONS_PAGE,
  type TelegramStarsOptions,
  TelegramStarsProvider,
} from "./telegram-stars.ts";

const TOKEN = "123456:TEST-stars-unit";
const PAYER = { id: 777_101, language_code: "en" };
const UNKNOWN_ORDER_ID = "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44";

type FetchFunction = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

let database: MoneyTestDatabase;
let db: Database;
let fake: FakeTelegramBotApi;
let provider: TelegramStarsProvider;

/**
 * Returns a grammY `Api` whose requests `serve` handles in process. grammY passes the signal of
 * its `abort-controller` polyfill, which the WHATWG `Request` constructor rejects, so the signal
 * is dropped.
 */
function apiServedBy(serve: FetchFunction): Api {
  const send: FetchFunction = (input, init) => serve(input, { ...init, signal: undefined });
  return new Api(TOKEN, {
    apiRoot: "http://telegram.invalid",
    fetch: send as unknown as ApiClientOptions["fetch"],
  });
}

function newProvider(overrides: Partial<TelegramStarsOptions> = {}): TelegramStarsProvider {
  return new TelegramStarsProvider({
    db,
    api: apiServedBy(fake.fetch),
    starsPerToken: 2n,
    maxTokens: 1000n,
    orderTtlSeconds: 3600,
    nodeName: "Unit node",
    ...overrides,
  });
}

/** A fetch that fails like undici when the Bot API cannot be reached. */
const unreachable: FetchFunction = () => Promise.reject(new TypeError("fetch failed"));

interface Checkout {
  attempt: PaymentAttempt;
  /** The provider's result for the pre-checkout query. */
  preCheckout: NotificationResult;
}

/**
 * Plays a payer through `target`: the pre-checkout query goes to `target.handleNotification`,
 * and the `successful_payment` update is left in `attempt.update` for the test to hand over.
 */
async function checkout(
  options: Omit<PayOptions, "deliver">,
  target: TelegramStarsProvider = provider,
): Promise<Checkout> {
  let handled: Promise<NotificationResult> | undefined;
  const attempt = await fake.pay({
    ...options,
    deliver: async (update) => {
      if (update.pre_checkout_query === undefined) return;
      handled = target.handleNotification(update);
      await handled;
    },
  });
  if (handled === undefined) throw new Error("the fake sent no pre-checkout query");
  return { attempt, preCheckout: await handled };
}

/** Pays the order through the fake and hands the `successful_payment` update to the provider. */
async function payOrder(orderId: string, options: Partial<PayOptions> = {}) {
  const { attempt } = await checkout({ payload: orderId, user: PAYER, ...options });
  expect(attempt.ok).toBe(true);
  const result = await provider.handleNotification(attempt.update as Update);
  return { chargeId: attempt.chargeId as string, update: attempt.update as Update, result };
}

async function storedOrder(orderId: string) {
  const [order] = await db.select().from(paymentOrders).where(eq(paymentOrders.id, orderId));
  return order;
}

function callsOf(method: string) {
  return fake.calls.filter((call) => call.method === method);
}

beforeAll(async () => {
  database = await openMoneyTestDatabase("payments_stars_unit");
  db = database.db;
  fake = new FakeTelegramBotApi({ token: TOKEN, deadlineMs: 5000 });
  provider = newProvider();
});

afterAll(async () => {
  await database.close();
});

describe("TelegramStarsProvider.createInvoice", () => {
  it("sends invoice to private chat", async () => {
    const userId = await createUser(db);

    const { order, url } = await provider.createInvoice({
      userId,
      tokens: 50n,
      language: "ru",
      telegramChatId: PAYER.id,
    });

    expect(url).toBeNull();
    expect(order.priceAmount).toBe(100n);
    expect(order.priceCurrency).toBe("XTR");
    expect(order.payerRef).toBe(String(PAYER.id));
    expect(order.state).toBe("created");
    const sent = callsOf("sendInvoice").at(-1);
    expect(sent?.params).toMatchObject({
      chat_id: PAYER.id,
      title: "Токены: 50",
      description: "50 платных токенов для Unit вашего аккаунта на Unit node.",
      payload: order.id,
      currency: "XTR",
      prices: [{ label: "Токены", amount: 100 }],
    });
  });

  it("leaves group invoice open to anyone", async () => {
    const userId = await createUser(db);

    const { order } = await provider.createInvoice({
      userId,
      tokens: 3n,
      language: "en",
      telegramChatId: -100_200_300,
    });

    expect(order.payerRef).toBeNull();
    expect(callsOf("sendInvoice").at(-1)?.params.chat_id).toBe(-100_200_300);
    const { preCheckout } = await checkout({ payload: order.id, user: { id: 42 } });
    expect(preCheckout).toEqual({ kind: "pre_checkout", ok: true });
    const { result } = await payOrder(order.id, { user: { id: 43 } });
    expect(result).toMatchObject({ kind: "payment", outcome: { status: "credited" } });
    // The payer of the successful payment becomes the order's payer.
    expect((await storedOrder(order.id))?.payerRef).toBe("43");
  });

  it("creates invoice link without chat", async () => {
    const userId = await createUser(db);

    const { order, url } = await provider.createInvoice({ userId, tokens: 30n, language: "en" });

    expect(url).toMatch(/^https:\/\/t\.me\//);
    expect(order.payerRef).toBeNull();
    expect(order.expiresAt.getTime() - order.createdAt.getTime()).toBeGreaterThan(3_590_000);
    expect(callsOf("createInvoiceLink").at(-1)?.params).toMatchObject({
      title: "30 tokens",
      description: "30 paid tokens for the Units of your account on Unit node.",
      payload: order.id,
      provider_token: "",
      currency: "XTR",
      prices: [{ label: "Tokens", amount: 60 }],
    });
  });

  it("rejects invalid token amounts", async () => {
    const userId = await createUser(db);
    const calls = fake.calls.length;

    await expect(provider.createInvoice({ userId, tokens: 0n, language: "en" })).rejects.toThrow(
      InvalidPaymentRequestError,
    );
    await expect(provider.createInvoice({ userId, tokens: 1001n, language: "en" })).rejects.toThrow(
      /not from 1 to 1000/,
    );
    const dear = newProvider({ starsPerToken: BigInt(Number.MAX_SAFE_INTEGER) });
    await expect(dear.createInvoice({ userId, tokens: 2n, language: "en" })).rejects.toThrow(
      /more than one invoice can carry/,
    );

    expect(fake.calls.length).toBe(calls);
    expect(await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId))).toEqual(
      [],
    );
  });

  it("marks order failed on API error", async () => {
    const userId = await createUser(db);
    fake.failures.set("sendInvoice", { code: 400, description: "Bad Request: chat not found" });
    fake.failures.set("createInvoiceLink", { code: 400, description: "Bad Request: broken" });
    try {
      const toChat = provider.createInvoice({
        userId,
        tokens: 5n,
        language: "en",
        telegramChatId: -100,
      });
      await expect(toChat).rejects.toThrow(PaymentProviderError);
      await expect(toChat).rejects.toThrow(/call sendInvoice failed: .*chat not found/);
      await expect(provider.createInvoice({ userId, tokens: 5n, language: "en" })).rejects.toThrow(
        /call createInvoiceLink failed: .*broken/,
      );
    } finally {
      fake.failures.clear();
    }

    const orders = await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId));
    expect(orders.map((order) => order.state)).toEqual(["failed", "failed"]);
    expect(orders.map((order) => order.failureReason)).toEqual([
      expect.stringContaining("chat not found"),
      expect.stringContaining("broken"),
    ]);
  });

  it("marks order failed on network error", async () => {
    const userId = await createUser(db);
    const offline = newProvider({ api: apiServedBy(unreachable) });

    const error = await offline
      .createInvoice({ userId, tokens: 5n, language: "en" })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(PaymentProviderError);
    expect((error as PaymentProviderError).provider).toBe("telegram_stars");
    expect((error as PaymentProviderError).method).toBe("createInvoiceLink");
    expect((error as Error).message).toMatch(/Network request for 'createInvoiceLink' failed/);
    const [order] = await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId));
    expect(order?.state).toBe("failed");
  });

  it("rejects unknown user", async () => {
    const calls = fake.calls.length;
    await expect(
      provider.createInvoice({ userId: UNKNOWN_ORDER_ID, tokens: 5n, language: "en" }),
    ).rejects.toThrow(/no user has the id/);
    expect(fake.calls.length).toBe(calls);
  });
});

describe("TelegramStarsProvider pre-checkout", () => {
  it("accepts matching query", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({
      userId,
      tokens: 10n,
      language: "en",
      telegramChatId: PAYER.id,
    });

    const { attempt, preCheckout } = await checkout({ payload: order.id, user: PAYER });

    expect(preCheckout).toEqual({ kind: "pre_checkout", ok: true });
    expect(attempt.ok).toBe(true);
    expect(callsOf("answerPreCheckoutQuery").at(-1)?.params).toMatchObject({ ok: true });
    // Accepting credits nothing, because only successful_payment credits the order.
    expect(await orderState(db, order.id)).toBe("created");
    expect(await paidBalance(db, userId)).toBe(0n);
    await provider.handleNotification(attempt.update as Update);
    expect(await paidBalance(db, userId)).toBe(10n);
  });

  it("rejects every unpayable case", async () => {
    const userId = await createUser(db);
    const { order: personal } = await provider.createInvoice({
      userId,
      tokens: 10n,
      language: "en",
      telegramChatId: PAYER.id,
    });
    const { order: failed } = await provider.createInvoice({ userId, tokens: 10n, language: "en" });
    await db.update(paymentOrders).set({ state: "failed" }).where(eq(paymentOrders.id, failed.id));
    const cryptoOrder = await createOrder(db, {
      userId,
      provider: "cryptopay",
      tokens: 10n,
      price: { amount: 20n, currency: "XTR", scale: 0 },
      expiresAt: new Date(Date.now() + 60_000),
      payerRef: null,
    });

    const cases: { payload: string; options?: Partial<PayOptions>; rejection: string }[] = [
      { payload: "not-an-order", rejection: "order_not_found" },
      { payload: UNKNOWN_ORDER_ID, rejection: "order_not_found" },
      { payload: cryptoOrder.id, rejection: "order_not_found" },
      { payload: failed.id, rejection: "not_payable" },
      { payload: personal.id, options: { currency: "USD" }, rejection: "currency_mismatch" },
      { payload: personal.id, options: { totalAmount: 19 }, rejection: "amount_mismatch" },
      { payload: personal.id, options: { user: { id: 42 } }, rejection: "wrong_payer" },
    ];
    for (const testCase of cases) {
      const { attempt, preCheckout } = await checkout({
        payload: testCase.payload,
        user: PAYER,
        totalAmount: 20,
        ...testCase.options,
      });
      const label = `${testCase.payload} ${testCase.rejection}`;
      expect(preCheckout, label).toEqual({
        kind: "pre_checkout",
        ok: false,
        rejection: testCase.rejection,
      });
      expect(attempt.answered, label).toBe(true);
      expect(attempt.ok, label).toBe(false);
    }

    expect(await orderState(db, personal.id)).toBe("created");
    expect(await orderState(db, cryptoOrder.id)).toBe("created");
  });

  it("writes rejection in payer's language", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 10n, language: "en" });

    const english = await checkout({ payload: order.id, user: PAYER, totalAmount: 1 });
    const russian = await checkout({
      payload: order.id,
      user: { id: 5, language_code: "RU-ru" },
      totalAmount: 1,
    });
    const unnamed = await checkout({ payload: order.id, user: { id: 6 }, totalAmount: 1 });

    expect(english.attempt.errorMessage).toBe(
      "The amount does not match the order. Request a new invoice.",
    );
    expect(russian.attempt.errorMessage).toBe(
      "Сумма не совпадает с заказом. Запросите новый счёт.",
    );
    expect(unnamed.attempt.errorMessage).toBe(english.attempt.errorMessage);
  });

  it("rejects expired order", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 10n, language: "en" });
    const later = newProvider({ now: () => new Date(Date.now() + 3601 * 1000) });

    const { attempt, preCheckout } = await checkout({ payload: order.id, user: PAYER }, later);

    expect(preCheckout).toMatchObject({ ok: false, rejection: "expired" });
    expect(attempt.errorMessage).toBe("This invoice has expired. Request a new invoice.");
    // The state changes only when reconciliation expires the order.
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("rejects paid and refunded orders", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    await payOrder(order.id);

    const afterPayment = await checkout({ payload: order.id, user: PAYER });
    await provider.refund(order.id);
    const afterRefund = await checkout({ payload: order.id, user: PAYER });

    expect(afterPayment.preCheckout).toMatchObject({ ok: false, rejection: "already_paid" });
    expect(afterPayment.attempt.errorMessage).toBe("This invoice is already paid.");
    expect(afterRefund.preCheckout).toMatchObject({ ok: false, rejection: "already_paid" });
    expect(await paidBalance(db, userId)).toBe(0n);
  });

  it("answers busy when check fails", async () => {
    // A closed database fails every query, as one that is down does.
    const broken = await openMoneyTestDatabase("payments_stars_unit_closed");
    await broken.close();
    const unavailable = newProvider({ db: broken.db, preCheckoutTimeoutMs: 100 });

    const { attempt, preCheckout } = await checkout(
      { payload: randomUUID(), user: PAYER },
      unavailable,
    );

    expect(preCheckout).toEqual({ kind: "pre_checkout", ok: false, rejection: "busy" });
    expect(attempt.answered).toBe(true);
    expect(attempt.errorMessage).toBe("The order is being processed. Try again in a minute.");
  });

  it("answers busy when check times out", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    // PGlite serves one connection, so an open transaction makes every other query wait.
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked = () => {};
    const holding = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const blocker = db.transaction(async (tx) => {
      await tx.execute(sql`select 1`);
      locked();
      await released;
    });
    await holding;
    try {
      const quick = newProvider({ preCheckoutTimeoutMs: 100 });
      const { preCheckout } = await checkout({ payload: order.id, user: PAYER }, quick);
      expect(preCheckout).toEqual({ kind: "pre_checkout", ok: false, rejection: "busy" });
    } finally {
      release();
      await blocker;
    }
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("raises when answer is rejected", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const update = {
      update_id: 9001,
      pre_checkout_query: {
        id: "query-never-sent",
        from: { id: PAYER.id, is_bot: false, first_name: "Payer" },
        currency: "XTR",
        total_amount: 10,
        invoice_payload: order.id,
      },
    } as Update;

    // The fake has no such query, so it rejects the reply as Telegram does past the deadline.
    await expect(provider.handleNotification(update)).rejects.toThrow(/query is too old/);
    expect(await orderState(db, order.id)).toBe("created");
  });
});

describe("TelegramStarsProvider successful_payment", () => {
  it("credits once on replay", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 30n, language: "en" });

    const { chargeId, update, result } = await payOrder(order.id);
    const replay = await provider.handleNotification(update);

    expect(result).toMatchObject({ kind: "payment", outcome: { status: "credited" } });
    expect(replay).toMatchObject({ kind: "payment", outcome: { status: "already_credited" } });
    expect(await paidBalance(db, userId)).toBe(30n);
    expect(await countPostings(db, `payment:telegram_stars:${chargeId}`)).toBe(1);
    const stored = await storedOrder(order.id);
    expect(stored?.state).toBe("paid");
    expect(stored?.providerPaymentId).toBe(chargeId);
    expect(stored?.payerRef).toBe(String(PAYER.id));
    await verifyLedger(db);
  });

  it("stores no payer without from", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });

    const { result } = await payOrder(order.id, { omitFrom: true });

    expect(result).toMatchObject({ kind: "payment", outcome: { status: "credited" } });
    expect((await storedOrder(order.id))?.payerRef).toBeNull();
    expect(await paidBalance(db, userId)).toBe(5n);
  });

  it("records wrong amount", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });

    const result = await provider.handleNotification({
      update_id: 9002,
      message: {
        message_id: 2,
        date: 0,
        chat: { id: PAYER.id, type: "private", first_name: "A" },
        from: { id: PAYER.id, is_bot: false, first_name: "A" },
        successful_payment: {
          currency: "XTR",
          total_amount: 9,
          invoice_payload: order.id,
          telegram_payment_charge_id: "stxUnitWrongAmount",
          provider_payment_charge_id: "",
        },
      },
    } as Update);

    expect(result).toMatchObject({ kind: "payment", outcome: { status: "rejected" } });
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await orderState(db, order.id)).toBe("created");
    expect(await mismatchKinds(db, "stxUnitWrongAmount")).toEqual(["amount_mismatch"]);
  });

  it("ignores other updates", async () => {
    const calls = fake.calls.length;

    const result = await provider.handleNotification({
      update_id: 9003,
      message: {
        message_id: 3,
        date: 0,
        chat: { id: 1, type: "private", first_name: "A" },
        text: "hello",
      },
    } as Update);
    const empty = await provider.handleNotification({ update_id: 9004 } as Update);

    expect(result).toEqual({ kind: "ignored", reason: "update 9003 is no payment update" });
    expect(empty).toEqual({ kind: "ignored", reason: "update 9004 is no payment update" });
    expect(fake.calls.length).toBe(calls);
  });
});

describe("TelegramStarsProvider.refund", () => {
  it("returns Stars and reverses credit", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 40n, language: "en" });
    const { chargeId } = await payOrder(order.id);

    const outcome = await provider.refund(order.id);

    expect(outcome.status).toBe("refunded");
    expect(outcome.order.state).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await countPostings(db, `refund:telegram_stars:${chargeId}`)).toBe(1);
    expect(callsOf("refundStarPayment").at(-1)?.params).toEqual({
      user_id: PAYER.id,
      telegram_payment_charge_id: chargeId,
    });

    const calls = callsOf("refundStarPayment").length;
    expect((await provider.refund(order.id)).status).toBe("already_refunded");
    expect(callsOf("refundStarPayment").length).toBe(calls);
    await verifyLedger(db);
  });

  it("rolls back on API error", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 8n, language: "en" });
    const { chargeId } = await payOrder(order.id);
    fake.failures.set("refundStarPayment", { code: 500, description: "Internal Server Error" });
    try {
      await expect(provider.refund(order.id)).rejects.toThrow(
        /call refundStarPayment failed: .*Internal Server Error/,
      );
    } finally {
      fake.failures.clear();
    }

    expect(await orderState(db, order.id)).toBe("paid");
    expect(await paidBalance(db, userId)).toBe(8n);
    expect(await countPostings(db, `refund:telegram_stars:${chargeId}`)).toBe(0);
    expect((await storedOrder(order.id))?.refundTransactionId).toBeNull();
  });

  it("rolls back on network error", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 8n, language: "en" });
    const { chargeId } = await payOrder(order.id);
    const offline = newProvider({ api: apiServedBy(unreachable) });

    await expect(offline.refund(order.id)).rejects.toThrow(PaymentProviderError);

    expect(await orderState(db, order.id)).toBe("paid");
    expect(await paidBalance(db, userId)).toBe(8n);
    expect(await countPostings(db, `refund:telegram_stars:${chargeId}`)).toBe(0);
  });

  it("completes refund Telegram already made", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 6n, language: "en" });
    const { chargeId } = await payOrder(order.id);
    // Telegram returned the Stars, but the node's commit was lost.
    await apiServedBy(fake.fetch).refundStarPayment(PAYER.id, chargeId);

    const outcome = await provider.refund(order.id);

    expect(outcome.status).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await countPostings(db, `refund:telegram_stars:${chargeId}`)).toBe(1);
  });

  it("rejects refund of spent tokens", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 6n, language: "en" });
    await payOrder(order.id);
    await spendTokens(db, userId, 4n, `usage-${order.id}`);
    const calls = callsOf("refundStarPayment").length;

    await expect(provider.refund(order.id)).rejects.toThrow(InsufficientFundsError);

    expect(callsOf("refundStarPayment").length).toBe(calls);
    expect(await orderState(db, order.id)).toBe("paid");
    expect(await paidBalance(db, userId)).toBe(2n);
  });

  it("requires payer for API refund", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    await payOrder(order.id, { omitFrom: true });

    await expect(provider.refund(order.id)).rejects.toThrow(/no payer's Telegram user id/);
    expect(await orderState(db, order.id)).toBe("paid");

    const outcome = await provider.refund(order.id, { externallyRefunded: true });
    expect(outcome.status).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(0n);
  });

  it("records external refund without API", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 3n, language: "en" });
    await payOrder(order.id);
    const calls = callsOf("refundStarPayment").length;

    const outcome = await provider.refund(order.id, { externallyRefunded: true });

    expect(outcome.status).toBe("refunded");
    expect(callsOf("refundStarPayment").length).toBe(calls);
    expect(await paidBalance(db, userId)).toBe(0n);
    await expect(provider.refund(UNKNOWN_ORDER_ID)).rejects.toThrow(PaymentOrderNotFoundError);
  });
});

describe("TelegramStarsProvider reconciliation", () => {
  it("credits lost payments and applies refunds", async () => {
    const userId = await createUser(db);
    const { order: lost } = await provider.createInvoice({ userId, tokens: 7n, language: "en" });
    const lostCharge = fake.bookLostPayment({ payload: lost.id, userId: PAYER.id, amount: 14 });
    const unknownCharge = fake.bookLostPayment({
      payload: UNKNOWN_ORDER_ID,
      userId: PAYER.id,
      amount: 1,
    });
    const { order: refunded } = await provider.createInvoice({
      userId,
      tokens: 2n,
      language: "en",
    });
    const { chargeId: refundedCharge } = await payOrder(refunded.id);
    // A refund made in Telegram's own tools, which the node has not recorded.
    await apiServedBy(fake.fetch).refundStarPayment(PAYER.id, refundedCharge);
    const payer = { id: PAYER.id, is_bot: false, first_name: "Payer" };
    const extra: StarTransaction[] = [
      // A payment that carries no payload.
      {
        id: "stxNoPayload",
        amount: 3,
        date: 0,
        source: { type: "user", transaction_type: "invoice_payment", user: payer },
      },
      // Kinds that are no invoice payment or refund.
      {
        id: "stxGift",
        amount: 3,
        date: 0,
        source: { type: "user", transaction_type: "gift_purchase", user: payer },
      },
      {
        id: "stxPaidMedia",
        amount: 3,
        date: 0,
        receiver: { type: "user", transaction_type: "paid_media_payment", user: payer },
      },
      { id: "stxFromFragment", amount: 50, date: 0, source: { type: "fragment" } },
      { id: "stxWithdrawal", amount: 50, date: 0, receiver: { type: "fragment" } },
    ] as StarTransaction[];
    fake.starTransactions.push(...extra);
    // Fill the list to more than two pages.
    while (fake.starTransactions.length <= 2 * STAR_TRANSACTIONS_PAGE) {
      fake.starTransactions.push({
        id: `stxOther${fake.starTransactions.length}`,
        amount: 1,
        date: 0,
      });
    }
    const pagesBefore = callsOf("getStarTransactions").length;
    const balanceBefore = await paidBalance(db, userId);

    const report = await reconcilePayments(db, provider);

    expect(report.credited).toBe(1);
    expect(report.refundsApplied).toBe(1);
    expect(report.refunds).toBeGreaterThanOrEqual(1);
    expect(await orderState(db, lost.id)).toBe("paid");
    expect(await orderState(db, refunded.id)).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(balanceBefore + 7n - 2n);
    expect(await countPostings(db, `payment:telegram_stars:${lostCharge}`)).toBe(1);
    expect(await mismatchKinds(db, unknownCharge)).toEqual(["unknown_order"]);
    expect(await mismatchKinds(db, "stxNoPayload")).toEqual(["unknown_order"]);
    for (const skipped of ["stxGift", "stxPaidMedia", "stxFromFragment", "stxWithdrawal"]) {
      expect(await mismatchKinds(db, skipped), skipped).toEqual([]);
    }
    const offsets = callsOf("getStarTransactions")
      .slice(pagesBefore)
      .map((call) => call.params);
    expect(offsets).toEqual([
      { offset: 0, limit: STAR_TRANSACTIONS_PAGE },
      { offset: STAR_TRANSACTIONS_PAGE, limit: STAR_TRANSACTIONS_PAGE },
      { offset: 2 * STAR_TRANSACTIONS_PAGE, limit: STAR_TRANSACTIONS_PAGE },
    ]);

    const again = await reconcilePayments(db, provider);
    expect(again.credited).toBe(0);
    expect(again.refundsApplied).toBe(0);
    expect(await paidBalance(db, userId)).toBe(balanceBefore + 7n - 2n);
    await verifyLedger(db);
  });
});
