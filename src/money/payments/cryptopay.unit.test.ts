/**
 * Unit tests of the Crypto Pay client and provider: PGlite as the database and the fake Crypto
 * Pay API served in process through its `fetch` method. Webhooks go straight to
 * `handleNotification` as the raw body and signature header, so no socket opens.
 */
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { FakeCryptoPay, type FakeCryptoPayInvoice } from "../../../test/fakes/cryptopay.ts";
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
import { verifyLedger } from "../ledger/index.ts";
import { CRYPTOPAY_INVOICES_PAGE, CryptoPayClient } from "./cryptopay/client.ts";
import { CryptoPayProvider } from "./cryptopay/provider.ts";
import { PaymentProviderError, RefundNotSupportedError } from "./errors.ts";
import { parseDecimalPrice } from "./price.ts";
import type { NotificationResult } from "./provider.ts";
import { reconcilePayments } from "./reconcile.ts";

const TOKEN = "12345:AAunitCryptoPayAppToken";
const API_URL = new URL("http://cryptopay.invalid/api");
const UNKNOWN_ORDER_ID = "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44";

type FetchFunction = typeof fetch;

let database: MoneyTestDatabase;
let db: Database;
let fake: FakeCryptoPay;
let provider: CryptoPayProvider;

function clientServedBy(
  serve: FetchFunction,
  options: { apiToken?: string; timeoutMs?: number } = {},
) {
  return new CryptoPayClient({ apiUrl: API_URL, apiToken: TOKEN, fetch: serve, ...options });
}

function newProvider(client: CryptoPayClient = clientServedBy(fake.fetch)): CryptoPayProvider {
  return new CryptoPayProvider({
    db,
    client,
    apiToken: TOKEN,
    tokenPrice: parseDecimalPrice("0.015", "USDT"),
    maxTokens: 10_000n,
    orderTtlSeconds: 600,
    nodeName: "Unit node",
  });
}

/** Returns a fetch that responds to every call with `status` and the raw `body`. */
function answering(status: number, body: string): FetchFunction {
  return async () =>
    new Response(body, { status, headers: { "content-type": "application/json" } });
}

/** Hands a webhook request to the provider: the body bytes and the signature header. */
async function deliver(body: string, signature: string | undefined) {
  return await provider.handleNotification({ body: Buffer.from(body, "utf8"), signature });
}

/** Hands a webhook request signed as Crypto Pay signs it. */
async function deliverSigned(body: string) {
  return await deliver(body, fake.sign(body));
}

/** Creates an invoice through the provider and marks it paid at the fake. */
async function paidInvoice(tokens: bigint) {
  const userId = await createUser(db);
  const { order, url } = await provider.createInvoice({ userId, tokens, language: "en" });
  const invoice = fake.markPaid(Number(order.providerInvoiceId));
  return { userId, order, url, invoice };
}

function callsOf(method: string) {
  return fake.calls.filter((call) => call.method === method);
}

beforeAll(async () => {
  database = await openMoneyTestDatabase("payments_cryptopay_unit");
  db = database.db;
  fake = new FakeCryptoPay({ token: TOKEN });
  provider = newProvider();
});

afterAll(async () => {
  await database.close();
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("CryptoPayProvider.createInvoice", () => {
  it("creates invoice in the asset", async () => {
    const userId = await createUser(db);

    const { order, url } = await provider.createInvoice({ userId, tokens: 100n, language: "ru" });

    expect(url).toMatch(/^https:\/\/t\.me\/CryptoBot\?start=/);
    expect(order.priceAmount).toBe(1500n);
    expect(order.priceScale).toBe(3);
    expect(order.priceCurrency).toBe("USDT");
    expect(order.payerRef).toBeNull();
    const call = callsOf("createInvoice").at(-1);
    expect(call?.params).toEqual({
      currency_type: "crypto",
      asset: "USDT",
      amount: "1.5",
      description: "100 платных токенов для Unit вашего аккаунта на Unit node.",
      payload: order.id,
      expires_in: 600,
      allow_comments: false,
    });
    const invoiceId = Number(order.providerInvoiceId);
    expect(fake.invoices.get(invoiceId)?.payload).toBe(order.id);
    const [stored] = await db.select().from(paymentOrders).where(eq(paymentOrders.id, order.id));
    expect(stored?.providerInvoiceId).toBe(String(invoiceId));
    expect(stored?.state).toBe("created");
  });

  it("marks order failed on API error", async () => {
    const userId = await createUser(db);
    const wrongToken = newProvider(clientServedBy(fake.fetch, { apiToken: "wrong" }));

    const error = await wrongToken
      .createInvoice({ userId, tokens: 5n, language: "en" })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(PaymentProviderError);
    expect((error as PaymentProviderError).provider).toBe("cryptopay");
    expect((error as PaymentProviderError).method).toBe("createInvoice");
    expect((error as Error).message).toMatch(/the API returned error .*UNAUTHORIZED/);
    const [order] = await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId));
    expect(order?.state).toBe("failed");
    expect(order?.failureReason).toMatch(/UNAUTHORIZED/);
    expect(order?.providerInvoiceId).toBeNull();
  });

  it("rejects invalid token amounts", async () => {
    const userId = await createUser(db);
    const calls = fake.calls.length;

    await expect(provider.createInvoice({ userId, tokens: 0n, language: "en" })).rejects.toThrow(
      /not from 1 to 10000/,
    );
    await expect(
      provider.createInvoice({ userId, tokens: 10_001n, language: "en" }),
    ).rejects.toThrow(/not from 1 to 10000/);

    expect(fake.calls.length).toBe(calls);
    expect(await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId))).toEqual(
      [],
    );
  });
});

describe("CryptoPayProvider webhook", () => {
  it("credits once on replay", async () => {
    const { userId, order, invoice } = await paidInvoice(200n);
    const body = fake.webhookBody(invoice);

    const first = await deliverSigned(body);
    const replay = await deliverSigned(body);
    const newDelivery = await deliverSigned(fake.webhookBody(invoice));

    expect(first).toMatchObject({ kind: "payment", outcome: { status: "credited" } });
    expect(replay).toMatchObject({ kind: "payment", outcome: { status: "already_credited" } });
    expect(newDelivery).toMatchObject({ kind: "payment", outcome: { status: "already_credited" } });
    expect(await paidBalance(db, userId)).toBe(200n);
    expect(await orderState(db, order.id)).toBe("paid");
    expect(await countPostings(db, `payment:cryptopay:${invoice.invoice_id}`)).toBe(1);
    await verifyLedger(db);
  });

  it("rejects invalid signatures", async () => {
    const { userId, order, invoice } = await paidInvoice(10n);
    const body = fake.webhookBody(invoice);
    const tampered = body.replace('"amount":"0.15"', '"amount":"0.01"');
    expect(tampered).not.toBe(body);

    const cases: { label: string; body: string; signature: string | undefined }[] = [
      { label: "signature of other body", body, signature: fake.sign(tampered) },
      { label: "tampered body", body: tampered, signature: fake.sign(body) },
      { label: "missing signature", body, signature: undefined },
      { label: "not hex", body, signature: "not-hex" },
      { label: "short hex", body, signature: fake.sign(body).slice(0, 62) },
      { label: "trailing space", body: `${body} `, signature: fake.sign(body) },
    ];
    for (const testCase of cases) {
      const result = await deliver(testCase.body, testCase.signature);
      expect(result, testCase.label).toEqual({ kind: "invalid_signature" });
    }

    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("reports signed non-updates", async () => {
    for (const body of ["{", '{"update_id": "x"}', "[]"]) {
      const result = await deliverSigned(body);
      expect(result.kind, body).toBe("invalid_body");
      expect((result as { message: string }).message, body).toMatch(
        /^the body is not a Crypto Pay update: /,
      );
    }
    const wrongId = await deliverSigned('{"update_id": "x"}');
    expect((wrongId as { message: string }).message).toMatch(
      /^the body is not a Crypto Pay update: update_id: [^\n]+; update_type: [^\n]+$/,
    );
  });

  it("ignores unpaid invoices and other types", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const active = fake.invoices.get(Number(order.providerInvoiceId)) as FakeCryptoPayInvoice;
    const unpaid = await deliverSigned(fake.webhookBody(active));
    const paid = fake.markPaid(active.invoice_id);
    const otherType = await deliverSigned(fake.webhookBody(paid, "invoice_expired"));

    expect(unpaid).toEqual({
      kind: "ignored",
      reason: expect.stringMatching(/^update \d+ is invoice_paid of a active invoice$/),
    });
    expect(otherType).toEqual({
      kind: "ignored",
      reason: expect.stringMatching(/^update \d+ is invoice_expired of a paid invoice$/),
    });
    expect(await orderState(db, order.id)).toBe("created");
    expect(await paidBalance(db, userId)).toBe(0n);
  });

  it("rejects paid invoice without asset", async () => {
    const { userId, order, invoice } = await paidInvoice(4n);
    // A fiat invoice carries no asset, so its payment cannot match a crypto order.
    const { asset: _asset, ...withoutAsset } = invoice;
    const body = JSON.stringify({
      update_id: 900,
      update_type: "invoice_paid",
      request_date: new Date().toISOString(),
      payload: { ...withoutAsset, currency_type: "fiat", fiat: "USD" },
    });

    const result: NotificationResult = await deliverSigned(body);

    expect(result).toMatchObject({ kind: "payment", outcome: { status: "rejected" } });
    expect(await mismatchKinds(db, String(invoice.invoice_id))).toEqual(["amount_mismatch"]);
    expect(await orderState(db, order.id)).toBe("created");
    expect(await paidBalance(db, userId)).toBe(0n);
  });

  it("rejects paid invoice without payload", async () => {
    const { order, invoice } = await paidInvoice(4n);
    const { payload: _payload, ...withoutPayload } = invoice;
    const body = JSON.stringify({
      update_id: 901,
      update_type: "invoice_paid",
      request_date: new Date().toISOString(),
      payload: withoutPayload,
    });

    const result = await deliverSigned(body);

    expect(result).toEqual({
      kind: "payment",
      outcome: { status: "rejected", reason: "the payment carries no order id" },
    });
    expect(await mismatchKinds(db, String(invoice.invoice_id))).toEqual(["unknown_order"]);
    expect(await orderState(db, order.id)).toBe("created");
  });
});

describe("CryptoPayProvider.refund", () => {
  it("needs external refund", async () => {
    const { userId, order, invoice } = await paidInvoice(20n);
    await deliverSigned(fake.webhookBody(invoice));
    expect(await paidBalance(db, userId)).toBe(20n);

    await expect(provider.refund(order.id)).rejects.toThrow(RefundNotSupportedError);
    await expect(provider.refund(order.id, { externallyRefunded: false })).rejects.toThrow(
      /cannot refund through its API: .*externallyRefunded: true/,
    );
    expect(await orderState(db, order.id)).toBe("paid");

    const outcome = await provider.refund(order.id, { externallyRefunded: true });

    expect(outcome.status).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await countPostings(db, `refund:cryptopay:${invoice.invoice_id}`)).toBe(1);
    expect((await provider.refund(order.id, { externallyRefunded: true })).status).toBe(
      "already_refunded",
    );
    await verifyLedger(db);
  });
});

describe("CryptoPayProvider reconciliation", () => {
  it("credits lost webhook and flags mismatches", async () => {
    const lost = await paidInvoice(70n);
    const credited = await paidInvoice(1n);
    await deliverSigned(fake.webhookBody(credited.invoice));
    // The provider lists a payment whose amount differs from its order.
    const tampered = await paidInvoice(2n);
    tampered.invoice.amount = "9";
    // An order marked paid that the provider does not list.
    const ghost = await paidInvoice(3n);
    await deliverSigned(fake.webhookBody(ghost.invoice));
    fake.invoices.delete(ghost.invoice.invoice_id);
    const unpaid = await provider.createInvoice({
      userId: await createUser(db),
      tokens: 6n,
      language: "en",
    });

    const report = await reconcilePayments(db, provider);

    // Earlier tests left paid invoices without a webhook, which this run credits as well.
    expect(report.credited).toBeGreaterThanOrEqual(1);
    expect(await paidBalance(db, lost.userId)).toBe(70n);
    expect(await orderState(db, lost.order.id)).toBe("paid");
    expect(await paidBalance(db, credited.userId)).toBe(1n);
    expect(await paidBalance(db, tampered.userId)).toBe(0n);
    expect(await mismatchKinds(db, String(tampered.invoice.invoice_id))).toEqual([
      "amount_mismatch",
    ]);
    expect(await mismatchKinds(db, String(ghost.invoice.invoice_id))).toEqual([
      "missing_at_provider",
    ]);
    expect(await orderState(db, unpaid.order.id)).toBe("created");
    expect(callsOf("getInvoices").at(-1)?.params).toEqual({
      status: "paid",
      offset: 0,
      count: CRYPTOPAY_INVOICES_PAGE,
    });

    const again = await reconcilePayments(db, provider);
    expect(again.credited).toBe(0);
    expect(await paidBalance(db, lost.userId)).toBe(70n);
    await verifyLedger(db);
  });

  it("pages through many invoices", async () => {
    const many = new FakeCryptoPay({ token: TOKEN });
    const client = clientServedBy(many.fetch);
    for (let index = 0; index < 1500; index++) {
      const invoice = await client.createInvoice({
        currency_type: "crypto",
        asset: "TON",
        amount: "1",
        description: "paging",
        payload: `not-an-order-${index}`,
        expires_in: 60,
        allow_comments: false,
      });
      many.markPaid(invoice.invoice_id);
    }
    const listing = newProvider(client);

    const listed = [];
    for await (const transaction of listing.listTransactions()) listed.push(transaction);

    expect(listed).toHaveLength(1500);
    expect(listed[0]).toEqual({
      kind: "payment",
      providerPaymentId: "1001",
      providerInvoiceId: "1001",
      orderId: "not-an-order-0",
      amount: "1",
      currency: "TON",
      payerRef: null,
    });
    expect(listed.at(-1)?.orderId).toBe("not-an-order-1499");
    expect(new Set(listed.map((transaction) => transaction.providerPaymentId)).size).toBe(1500);
    const pages = many.calls
      .filter((call) => call.method === "getInvoices")
      .map((call) => call.params.offset);
    expect(pages).toEqual([0, CRYPTOPAY_INVOICES_PAGE]);
  });
});

describe("CryptoPayClient", () => {
  it("reports unusable responses", async () => {
    const answers = [
      {
        status: 502,
        body: "<html>bad gateway</html>",
        error: /HTTP 502 with a body that is not JSON/,
      },
      { status: 200, body: '{"result": 1}', error: /HTTP 200 with an unexpected answer/ },
      {
        status: 400,
        body: '{"ok": false, "error": {"code": 400, "name": "COUNT_INVALID"}}',
        error: /the API returned error \{"code":400,"name":"COUNT_INVALID"\}/,
      },
      {
        status: 200,
        body: '{"ok": true, "result": {"items": [{}]}}',
        error: /getInvoices failed: unexpected result: /,
      },
    ];
    for (const answer of answers) {
      const client = clientServedBy(answering(answer.status, answer.body));
      const call = client.getInvoices({ status: "paid", offset: 0, count: 1 });
      await expect(call, answer.body).rejects.toThrow(PaymentProviderError);
      await expect(call, answer.body).rejects.toThrow(answer.error);
    }
  });

  it("reports failed request", async () => {
    const networkError = new TypeError("fetch failed");
    const client = clientServedBy(() => Promise.reject(networkError));

    const error = await client
      .getInvoices({ status: "paid", offset: 0, count: 1 })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(PaymentProviderError);
    expect((error as Error).message).toBe(
      "Payment provider cryptopay call getInvoices failed: request failed: TypeError: fetch failed",
    );
    expect((error as Error).cause).toBe(networkError);
  });

  it("times out slow call", async () => {
    // Waits until the client's own signal aborts the request, as an API that never responds.
    const hanging: FetchFunction = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      });
    const client = clientServedBy(hanging, { timeoutMs: 50 });

    await expect(client.getInvoices({ status: "paid", offset: 0, count: 1 })).rejects.toThrow(
      /getInvoices failed: request failed: TimeoutError/,
    );
  });

  it("uses global fetch by default", async () => {
    const standalone = new FakeCryptoPay({ token: TOKEN });
    const created = await clientServedBy(standalone.fetch).createInvoice({
      currency_type: "crypto",
      asset: "TON",
      amount: "2.5",
      description: "global fetch",
      payload: UNKNOWN_ORDER_ID,
      expires_in: 60,
      allow_comments: false,
    });
    standalone.markPaid(created.invoice_id);
    vi.stubGlobal("fetch", standalone.fetch);
    // A trailing slash on the API URL is dropped before the method name.
    const client = new CryptoPayClient({ apiUrl: new URL(`${API_URL.href}/`), apiToken: TOKEN });

    const invoices = await client.getInvoices({ status: "paid", offset: 0, count: 10 });

    expect(invoices.map((invoice) => invoice.invoice_id)).toEqual([created.invoice_id]);
    expect(invoices[0]).toMatchObject({ status: "paid", amount: "2.5", asset: "TON" });
    expect(standalone.calls.map((call) => call.method)).toEqual(["createInvoice", "getInvoices"]);
  });
});
