import { eq } from "drizzle-orm";
import { Api, type Bot } from "grammy";
import type { Update } from "grammy/types";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { FakeTelegramBotApi } from "../../../test/fakes/telegram-bot-api.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import type { Database } from "../../db/client.ts";
import { paymentOrders } from "../../db/schema/index.ts";
import { createPaymentBot, PAYMENT_UPDATES } from "../../payments/telegram-bot.ts";
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
import { reconcilePayments } from "./reconcile.ts";
import { TelegramStarsProvider } from "./telegram-stars.ts";

const TOKEN = "123456:TEST-payments_bot";
const PAYER = { id: 777_001, language_code: "en" };

let database: TestDatabase;
let db: Database;
let fake: FakeTelegramBotApi;
let provider: TelegramStarsProvider;
let bot: Bot;
let polling: Promise<void>;

function newProvider(overrides: Partial<ConstructorParameters<typeof TelegramStarsProvider>[0]>) {
  return new TelegramStarsProvider({
    db,
    api: new Api(TOKEN, { apiRoot: fake.apiRoot }),
    starsPerToken: 2n,
    maxTokens: 1000n,
    orderTtlSeconds: 3600,
    nodeName: "Test node",
    ...overrides,
  });
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "payments_stars");
  db = database.db;
  fake = new FakeTelegramBotApi({ token: TOKEN });
  await fake.start();
  provider = newProvider({});
  bot = createPaymentBot({ token: TOKEN, apiRoot: fake.apiRoot, provider });
  polling = bot.start({ allowed_updates: [...PAYMENT_UPDATES] });
});

afterAll(async () => {
  await bot.stop();
  await polling;
  await fake.stop();
  await database.drop();
});

describe("Telegram Stars payment", () => {
  it("sends an invoice in XTR with one price", async () => {
    const userId = await createUser(db);
    const { order, url } = await provider.createInvoice({
      userId,
      tokens: 50n,
      language: "ru",
      telegramChatId: PAYER.id,
    });

    expect(url).toBeNull();
    expect(order.priceAmount).toBe(100n);
    expect(order.payerRef).toBe(String(PAYER.id));
    const sent = fake.calls.find((call) => call.method === "sendInvoice");
    expect(sent?.params.currency).toBe("XTR");
    expect(sent?.params.prices).toEqual([{ label: "Токены", amount: 100 }]);
    expect(sent?.params.payload).toBe(order.id);
    expect(sent?.params.title).toBe("Токены: 50");
  });

  it("credits once on successful payment", async () => {
    const userId = await createUser(db);
    const { order, url } = await provider.createInvoice({ userId, tokens: 30n, language: "en" });
    expect(url).toMatch(/^https:\/\/t\.me\//);
    expect(order.payerRef).toBeNull();

    const attempt = await fake.pay({ payload: order.id, user: PAYER });
    expect(attempt.ok).toBe(true);
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));
    expect(await paidBalance(db, userId)).toBe(30n);

    // The same update again, as a process that restarted before confirming it handles it.
    const replay = await provider.handleNotification(attempt.update as Update);
    expect(replay).toMatchObject({ kind: "payment", outcome: { status: "already_credited" } });
    expect(await paidBalance(db, userId)).toBe(30n);
    expect(await countPostings(db, `payment:telegram_stars:${attempt.chargeId}`)).toBe(1);

    const [stored] = await db.select().from(paymentOrders).where(eq(paymentOrders.id, order.id));
    expect(stored?.providerPaymentId).toBe(attempt.chargeId);
    expect(stored?.payerRef).toBe(String(PAYER.id));
  });

  it("rejects pre-checkout of wrong amount", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 10n, language: "en" });

    const attempt = await fake.pay({ payload: order.id, user: PAYER, totalAmount: 1 });

    expect(attempt.answered).toBe(true);
    expect(attempt.ok).toBe(false);
    expect(attempt.errorMessage).toBe(
      "The amount does not match the order. Request a new invoice.",
    );
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("rejects pre-checkout of expired order", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 10n, language: "en" });
    await db
      .update(paymentOrders)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(paymentOrders.id, order.id));

    const attempt = await fake.pay({ payload: order.id, user: { id: 5, language_code: "ru" } });

    expect(attempt.ok).toBe(false);
    expect(attempt.errorMessage).toBe("Срок действия счёта истёк. Запросите новый счёт.");
  });

  it("rejects pre-checkout of other cases", async () => {
    const userId = await createUser(db);
    const { order: personal } = await provider.createInvoice({
      userId,
      tokens: 10n,
      language: "en",
      telegramChatId: PAYER.id,
    });
    const cases = [
      { payload: "not-an-order", expected: "This invoice is unknown. Request a new invoice." },
      {
        payload: "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
        expected: "This invoice is unknown. Request a new invoice.",
      },
      {
        payload: personal.id,
        user: { id: 42 },
        expected: "This invoice was issued to another user.",
      },
      {
        payload: personal.id,
        currency: "USD",
        expected: "This invoice has the wrong currency. Request a new invoice.",
      },
    ];
    for (const testCase of cases) {
      const attempt = await fake.pay({
        payload: testCase.payload,
        user: testCase.user ?? PAYER,
        ...(testCase.currency === undefined ? {} : { currency: testCase.currency }),
        totalAmount: 20,
      });
      expect(attempt.errorMessage, testCase.payload).toBe(testCase.expected);
    }

    await db
      .update(paymentOrders)
      .set({ state: "failed" })
      .where(eq(paymentOrders.id, personal.id));
    const failed = await fake.pay({ payload: personal.id, user: PAYER });
    expect(failed.errorMessage).toBe("This invoice can no longer be paid. Request a new invoice.");
  });

  it("rejects pre-checkout of paid order", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const first = await fake.pay({ payload: order.id, user: PAYER });
    expect(first.ok).toBe(true);
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));

    const second = await fake.pay({ payload: order.id, user: PAYER });

    expect(second.errorMessage).toBe("This invoice is already paid.");
  });

  it("answers busy when the check times out", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const quick = newProvider({ preCheckoutTimeoutMs: 100 });
    const blocker = await database.pool.connect();
    try {
      await blocker.query("begin");
      await blocker.query("lock table payment_orders in access exclusive mode");
      const attempt = await fake.pay({
        payload: order.id,
        user: PAYER,
        deliver: (update) => quick.handleNotification(update),
      });
      expect(attempt.ok).toBe(false);
      expect(attempt.errorMessage).toBe("The order is being processed. Try again in a minute.");
    } finally {
      await blocker.query("rollback");
      blocker.release();
    }
  });

  it("ignores updates without payments", async () => {
    const result = await provider.handleNotification({
      update_id: 1,
      message: {
        message_id: 1,
        date: 0,
        chat: { id: 1, type: "private", first_name: "A" },
        text: "hello",
      },
    } as Update);
    expect(result.kind).toBe("ignored");
  });

  it("records a payment of the wrong amount", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });

    const result = await provider.handleNotification({
      update_id: 2,
      message: {
        message_id: 2,
        date: 0,
        chat: { id: PAYER.id, type: "private", first_name: "A" },
        successful_payment: {
          currency: "XTR",
          total_amount: 9,
          invoice_payload: order.id,
          telegram_payment_charge_id: "stxWrongAmount",
          provider_payment_charge_id: "",
        },
      },
    } as Update);

    expect(result).toMatchObject({ kind: "payment", outcome: { status: "rejected" } });
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await mismatchKinds(db, "stxWrongAmount")).toEqual(["amount_mismatch"]);
  });

  it("stores no payer without from", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const attempt = await fake.pay({ payload: order.id, user: PAYER, omitFrom: true });
    expect(attempt.ok).toBe(true);
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));

    const [stored] = await db.select().from(paymentOrders).where(eq(paymentOrders.id, order.id));
    expect(stored?.payerRef).toBeNull();
    await expect(provider.refund(order.id)).rejects.toThrow(/no payer's Telegram user id/);
    expect(await orderState(db, order.id)).toBe("paid");
  });
});

describe("Telegram Stars invoice", () => {
  it("rejects token amounts out of range", async () => {
    const userId = await createUser(db);
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
  });

  it("marks the order failed when Telegram rejects", async () => {
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
      await expect(toChat).rejects.toThrow(/sendInvoice failed: .*chat not found/);
      await expect(provider.createInvoice({ userId, tokens: 5n, language: "en" })).rejects.toThrow(
        /createInvoiceLink failed/,
      );
    } finally {
      fake.failures.clear();
    }
    const failed = await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId));
    expect(failed.map((order) => order.state)).toEqual(["failed", "failed"]);
    expect(failed.every((order) => order.payerRef === null)).toBe(true);
  });

  it("rejects an unknown user", async () => {
    await expect(
      provider.createInvoice({
        userId: "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
        tokens: 5n,
        language: "en",
      }),
    ).rejects.toThrow(/no user has the id/);
  });
});

describe("Telegram Stars refund", () => {
  it("reverses the credit", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 40n, language: "en" });
    const attempt = await fake.pay({ payload: order.id, user: PAYER });
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));
    expect(await paidBalance(db, userId)).toBe(40n);

    const outcome = await provider.refund(order.id);

    expect(outcome.status).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await countPostings(db, `refund:telegram_stars:${attempt.chargeId}`)).toBe(1);
    const refund = fake.calls.find((call) => call.method === "refundStarPayment");
    expect(refund?.params).toEqual({
      user_id: PAYER.id,
      telegram_payment_charge_id: attempt.chargeId,
    });
    expect((await provider.refund(order.id)).status).toBe("already_refunded");
    await verifyLedger(db);
  });

  it("rolls back when Telegram fails", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 8n, language: "en" });
    await fake.pay({ payload: order.id, user: PAYER });
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));

    fake.failures.set("refundStarPayment", { code: 400, description: "Bad Request: BOOM" });
    try {
      await expect(provider.refund(order.id)).rejects.toThrow(/refundStarPayment failed/);
    } finally {
      fake.failures.clear();
    }
    expect(await orderState(db, order.id)).toBe("paid");
    expect(await paidBalance(db, userId)).toBe(8n);

    // Telegram returned the Stars, but the commit was lost: a second refund completes it.
    fake.failures.set("refundStarPayment", {
      code: 400,
      description: "Bad Request: CHARGE_ALREADY_REFUNDED",
    });
    try {
      expect((await provider.refund(order.id)).status).toBe("refunded");
    } finally {
      fake.failures.clear();
    }
    expect(await paidBalance(db, userId)).toBe(0n);
  });

  it("refuses refund of spent tokens", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 6n, language: "en" });
    await fake.pay({ payload: order.id, user: PAYER });
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));
    await spendTokens(db, userId, 4n, `usage-${order.id}`);

    await expect(provider.refund(order.id)).rejects.toThrow(InsufficientFundsError);
    expect(await orderState(db, order.id)).toBe("paid");
  });

  it("records an external refund", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 3n, language: "en" });
    await fake.pay({ payload: order.id, user: PAYER });
    await vi.waitFor(async () => expect(await orderState(db, order.id)).toBe("paid"));
    const calls = fake.calls.filter((call) => call.method === "refundStarPayment").length;

    expect((await provider.refund(order.id, { externallyRefunded: true })).status).toBe("refunded");
    expect(fake.calls.filter((call) => call.method === "refundStarPayment").length).toBe(calls);
    await expect(provider.refund("0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44")).rejects.toThrow(
      PaymentOrderNotFoundError,
    );
  });
});

describe("Telegram Stars reconciliation", () => {
  it("credits lost and flags mismatches", async () => {
    const userId = await createUser(db);
    const { order: lost } = await provider.createInvoice({ userId, tokens: 7n, language: "en" });
    const lostCharge = fake.bookLostPayment({ payload: lost.id, userId: PAYER.id, amount: 14 });
    const unknownCharge = fake.bookLostPayment({
      payload: "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
      userId: PAYER.id,
      amount: 1,
    });
    // A refund made in Telegram's own tools, which the node has not recorded.
    const { order: refunded } = await provider.createInvoice({
      userId,
      tokens: 2n,
      language: "en",
    });
    const paid = await fake.pay({ payload: refunded.id, user: PAYER });
    await vi.waitFor(async () => expect(await orderState(db, refunded.id)).toBe("paid"));
    await new Api(TOKEN, { apiRoot: fake.apiRoot }).refundStarPayment(
      PAYER.id,
      paid.chargeId as string,
    );
    // Other transaction kinds are skipped.
    fake.starTransactions.push({
      id: "withdrawal-1",
      amount: 50,
      date: 0,
      receiver: { type: "fragment" },
    });
    // A payment of an invoice that carried no payload cannot belong to any order.
    fake.starTransactions.push({
      id: "no-payload-1",
      amount: 3,
      date: 0,
      source: {
        type: "user",
        transaction_type: "invoice_payment",
        user: { id: PAYER.id, is_bot: false, first_name: "Payer" },
      },
    } as never);
    // More than one page of transactions.
    for (let index = 0; index < 100; index++) {
      fake.starTransactions.push({ id: `other-${index}`, amount: 1, date: 0 });
    }
    const before = await paidBalance(db, userId);

    const report = await reconcilePayments(db, provider);

    expect(report.credited).toBe(1);
    expect(report.refundsApplied).toBe(1);
    expect(await orderState(db, lost.id)).toBe("paid");
    expect(await orderState(db, refunded.id)).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(before + 7n - 2n);
    expect(await mismatchKinds(db, unknownCharge)).toEqual(["unknown_order"]);
    expect(await mismatchKinds(db, "no-payload-1")).toEqual(["unknown_order"]);
    expect(await countPostings(db, `payment:telegram_stars:${lostCharge}`)).toBe(1);

    const again = await reconcilePayments(db, provider);
    expect(again.credited).toBe(0);
    expect(again.refundsApplied).toBe(0);
    expect(await paidBalance(db, userId)).toBe(before + 7n - 2n);
    await verifyLedger(db);
  });
});
