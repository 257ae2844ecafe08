import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { OpenAPIHono } from "@hono/zod-openapi";
import { eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { Hono } from "hono";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FakeCryptoPay } from "../../../test/fakes/cryptopay.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import type { Database } from "../../db/client.ts";
import * as schema from "../../db/schema/index.ts";
import { paymentOrders } from "../../db/schema/index.ts";
import { handleApiError } from "../../http/api/failures.ts";
import { requireAdminToken } from "../../http/auth.ts";
import { registerPaymentRoutes } from "../../payments/routes.ts";
import {
  countPostings,
  createUser,
  mismatchKinds,
  orderState,
  paidBalance,
} from "../../payments/test-support.ts";
import { verifyLedger } from "../ledger/index.ts";
import { CryptoPayClient } from "./cryptopay/client.ts";
import { CryptoPayProvider } from "./cryptopay/provider.ts";
import { PaymentProviderError, RefundNotSupportedError } from "./errors.ts";
import { confirmPayment } from "./orders.ts";
import { parseDecimalPrice } from "./price.ts";
import { reconcilePayments } from "./reconcile.ts";

const TOKEN = "12345:AAtestCryptoPayAppToken";
const ADMIN = "a".repeat(64);

let database: TestDatabase;
let db: Database;
let fake: FakeCryptoPay;
let provider: CryptoPayProvider;
let server: ServerType;
let webhookUrl: URL;

function newProvider(client: CryptoPayClient) {
  return new CryptoPayProvider({
    db,
    client,
    apiToken: TOKEN,
    tokenPrice: parseDecimalPrice("0.015", "USDT"),
    maxTokens: 10_000n,
    orderTtlSeconds: 600,
    nodeName: "Test node",
  });
}

/** Creates an invoice and marks it paid at the fake; returns the order and the paid invoice. */
async function paidInvoice(tokens: bigint) {
  const userId = await createUser(db);
  const { order, url } = await provider.createInvoice({ userId, tokens, language: "en" });
  const invoice = fake.markPaid(Number(order.providerInvoiceId));
  return { userId, order, url, invoice };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "payments_cryptopay");
  db = database.db;
  fake = new FakeCryptoPay({ token: TOKEN });
  await fake.start();
  provider = newProvider(new CryptoPayClient({ apiUrl: fake.apiUrl, apiToken: TOKEN }));

  const api = new OpenAPIHono();
  api.onError(handleApiError);
  registerPaymentRoutes(api, {
    db,
    providers: { telegramStars: undefined, cryptoPay: provider },
    admin: requireAdminToken(ADMIN),
  });
  const app = new Hono().route("/api/v1", api);
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
      resolve(info.port),
    );
  });
  webhookUrl = new URL(`http://127.0.0.1:${port}/api/v1/payments/cryptopay/webhook`);
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await fake.stop();
  await database.drop();
});

describe("Crypto Pay invoice", () => {
  it("creates an invoice in the asset", async () => {
    const userId = await createUser(db);
    const { order, url } = await provider.createInvoice({ userId, tokens: 100n, language: "ru" });

    expect(url).toMatch(/^https:\/\/t\.me\/CryptoBot/);
    expect(order.priceAmount).toBe(1500n);
    expect(order.priceScale).toBe(3);
    const call = fake.calls.find((entry) => entry.method === "createInvoice");
    expect(call?.params).toMatchObject({
      currency_type: "crypto",
      asset: "USDT",
      amount: "1.5",
      payload: order.id,
      expires_in: 600,
    });
    expect(call?.params.description).toContain("платных токенов");
    const [stored] = await db.select().from(paymentOrders).where(eq(paymentOrders.id, order.id));
    expect(stored?.providerInvoiceId).toBe(order.providerInvoiceId);
  });

  it("marks the order failed on API error", async () => {
    const userId = await createUser(db);
    const wrongToken = newProvider(new CryptoPayClient({ apiUrl: fake.apiUrl, apiToken: "bad" }));

    await expect(wrongToken.createInvoice({ userId, tokens: 5n, language: "en" })).rejects.toThrow(
      /createInvoice failed: the API returned error .*UNAUTHORIZED/,
    );
    const [order] = await db.select().from(paymentOrders).where(eq(paymentOrders.userId, userId));
    expect(order?.state).toBe("failed");
    await expect(
      wrongToken.createInvoice({ userId, tokens: 50_000n, language: "en" }),
    ).rejects.toThrow(/not from 1 to 10000/);
  });
});

describe("Crypto Pay webhook", () => {
  it("credits once on a replayed webhook", async () => {
    const { userId, order, invoice } = await paidInvoice(200n);
    const body = fake.webhookBody(invoice);

    const first = await fake.sendWebhook(webhookUrl, body);
    const replay = await fake.sendWebhook(webhookUrl, body);
    const newDelivery = await fake.sendWebhook(webhookUrl, fake.webhookBody(invoice));

    expect([first.status, replay.status, newDelivery.status]).toEqual([200, 200, 200]);
    expect(await paidBalance(db, userId)).toBe(200n);
    expect(await orderState(db, order.id)).toBe("paid");
    expect(await countPostings(db, `payment:cryptopay:${invoice.invoice_id}`)).toBe(1);
  });

  it("rejects a bad signature with 401", async () => {
    const { userId, order, invoice } = await paidInvoice(10n);
    const body = fake.webhookBody(invoice);
    const forged = fake.sign(body.replace('"amount":"0.15"', '"amount":"0.01"'));

    const cases = [
      await fake.sendWebhook(webhookUrl, body, forged),
      await fake.sendWebhook(webhookUrl, body, null),
      await fake.sendWebhook(webhookUrl, body, "not-hex"),
      await fake.sendWebhook(webhookUrl, `${body} `, fake.sign(body)),
    ];

    for (const response of cases) {
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        "invalid_signature",
      );
    }
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("answers 400 for a signed non-update", async () => {
    const body = '{"update_id": "x"}';
    const response = await fake.sendWebhook(webhookUrl, body);
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { message: string } };
    expect(error.message).toMatch(/update_id: [^\n]+; update_type: /);
    const notJson = await fake.sendWebhook(webhookUrl, "{");
    expect(notJson.status).toBe(400);
  });

  it("ignores an unpaid invoice", async () => {
    const userId = await createUser(db);
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const active = fake.invoices.get(Number(order.providerInvoiceId));

    const response = await fake.sendWebhook(
      webhookUrl,
      fake.webhookBody(active as NonNullable<typeof active>),
    );

    expect(response.status).toBe(200);
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("flags amounts that cannot match the price", async () => {
    // The price of 10 tokens is 0.15 USDT at scale 3; neither amount can equal it.
    for (const amount of ["0.1500001", "0,15"]) {
      const { userId, order, invoice } = await paidInvoice(10n);
      const body = fake.webhookBody({ ...invoice, amount });

      const response = await fake.sendWebhook(webhookUrl, body);

      expect(response.status, amount).toBe(200);
      expect(await orderState(db, order.id)).toBe("created");
      expect(await paidBalance(db, userId)).toBe(0n);
      expect(await mismatchKinds(db, String(invoice.invoice_id))).toEqual(["amount_mismatch"]);
    }
  });

  it("ignores an update of another type", async () => {
    const { order, invoice } = await paidInvoice(5n);
    const body = fake.webhookBody(invoice, "invoice_expired");
    const result = await provider.handleNotification({
      body: Buffer.from(body),
      signature: fake.sign(body),
    });
    expect(result).toMatchObject({ kind: "ignored" });
    expect(await orderState(db, order.id)).toBe("created");
  });

  it("credits once for 20 parallel webhooks", async () => {
    const { userId, order, invoice } = await paidInvoice(300n);
    const bodies = Array.from({ length: 20 }, () => fake.webhookBody(invoice));

    const responses = await Promise.all(bodies.map((body) => fake.sendWebhook(webhookUrl, body)));

    expect(responses.map((response) => response.status)).toEqual(Array(20).fill(200));
    expect(await paidBalance(db, userId)).toBe(300n);
    expect(await orderState(db, order.id)).toBe("paid");
    expect(await countPostings(db, `payment:cryptopay:${invoice.invoice_id}`)).toBe(1);
    await verifyLedger(db);
  });

  it("leaves no half state when killed", async () => {
    const { userId, order, invoice } = await paidInvoice(40n);
    const payment = {
      provider: "cryptopay" as const,
      orderId: order.id,
      providerPaymentId: String(invoice.invoice_id),
      providerInvoiceId: String(invoice.invoice_id),
      amount: invoice.amount,
      currency: invoice.asset,
      payerRef: null,
    };

    // The credit is written, then the session dies before the commit, as when the process is
    // killed between the posting and the commit.
    const client = new pg.Client({ connectionString: database.url });
    // The killed session's socket closes with an error event, which is expected here.
    client.on("error", () => undefined);
    await client.connect();
    const killable = drizzle({ client, schema });
    await expect(
      killable.transaction(async (tx) => {
        const outcome = await confirmPayment(tx, payment);
        expect(outcome.status).toBe("credited");
        await tx.execute(sql`select pg_terminate_backend(pg_backend_pid())`);
      }),
    ).rejects.toThrow();

    expect(await orderState(db, order.id)).toBe("created");
    expect(await paidBalance(db, userId)).toBe(0n);
    expect(await countPostings(db, `payment:cryptopay:${invoice.invoice_id}`)).toBe(0);
    await verifyLedger(db);

    const retry = await fake.sendWebhook(webhookUrl, fake.webhookBody(invoice));
    expect(retry.status).toBe(200);
    expect(await paidBalance(db, userId)).toBe(40n);
  });
});

describe("Crypto Pay refund", () => {
  it("needs an external refund", async () => {
    const { userId, order, invoice } = await paidInvoice(20n);
    await fake.sendWebhook(webhookUrl, fake.webhookBody(invoice));

    await expect(provider.refund(order.id)).rejects.toThrow(RefundNotSupportedError);
    const response = await fetch(new URL(`../orders/${order.id}/refund`, webhookUrl), {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ externallyRefunded: true }),
    });

    expect(response.status).toBe(200);
    expect(((await response.json()) as { state: string }).state).toBe("refunded");
    expect(await paidBalance(db, userId)).toBe(0n);
    await verifyLedger(db);
  });
});

describe("Crypto Pay reconciliation", () => {
  it("credits a lost webhook and flags mismatches", async () => {
    const lost = await paidInvoice(70n);
    const credited = await paidInvoice(1n);
    await fake.sendWebhook(webhookUrl, fake.webhookBody(credited.invoice));
    // The provider lists a payment whose amount differs from its order.
    const tampered = await paidInvoice(2n);
    tampered.invoice.amount = "9";
    // An order marked paid that the provider does not list.
    const ghost = await paidInvoice(3n);
    await fake.sendWebhook(webhookUrl, fake.webhookBody(ghost.invoice));
    fake.invoices.delete(ghost.invoice.invoice_id);

    const report = await reconcilePayments(db, provider);

    // Earlier tests left paid invoices without a valid webhook, which are credited here too.
    expect(report.credited).toBeGreaterThanOrEqual(1);
    expect(await paidBalance(db, lost.userId)).toBe(70n);
    expect(await paidBalance(db, credited.userId)).toBe(1n);
    expect(await paidBalance(db, tampered.userId)).toBe(0n);
    expect(await mismatchKinds(db, String(tampered.invoice.invoice_id))).toEqual([
      "amount_mismatch",
    ]);
    expect(await mismatchKinds(db, String(ghost.invoice.invoice_id))).toEqual([
      "missing_at_provider",
    ]);
    expect(report.mismatches).toBeGreaterThanOrEqual(2);

    const again = await reconcilePayments(db, provider);
    expect(again.credited).toBe(0);
    expect(await paidBalance(db, lost.userId)).toBe(70n);
    await verifyLedger(db);
  });
});

describe("Crypto Pay client", () => {
  it("reports unusable answers", async () => {
    const answers = [
      { status: 502, body: "<html>bad gateway</html>", error: /not JSON/ },
      { status: 200, body: '{"result": 1}', error: /unexpected answer/ },
      { status: 200, body: '{"ok": true, "result": {"items": [{}]}}', error: /unexpected result/ },
    ];
    for (const answer of answers) {
      const stub = createServer((_request, response) => {
        response.writeHead(answer.status, { "content-type": "application/json" });
        response.end(answer.body);
      });
      stub.listen(0, "127.0.0.1");
      await once(stub, "listening");
      const { port } = stub.address() as AddressInfo;
      const client = new CryptoPayClient({
        apiUrl: new URL(`http://127.0.0.1:${port}/api/`),
        apiToken: TOKEN,
      });
      await expect(client.getInvoices({ status: "paid", offset: 0, count: 1 })).rejects.toThrow(
        answer.error,
      );
      await new Promise<void>((resolve) => stub.close(() => resolve()));
    }
  });

  it("reports a failed request", async () => {
    const stub = createServer();
    stub.listen(0, "127.0.0.1");
    await once(stub, "listening");
    const { port } = stub.address() as AddressInfo;
    await new Promise<void>((resolve) => stub.close(() => resolve()));
    const client = new CryptoPayClient({
      apiUrl: new URL(`http://127.0.0.1:${port}/api`),
      apiToken: TOKEN,
      timeoutMs: 1000,
    });

    const call = client.getInvoices({ status: "paid", offset: 0, count: 1 });
    await expect(call).rejects.toThrow(PaymentProviderError);
    await expect(call).rejects.toThrow(/request failed/);
  });

  it("pages through many invoices", async () => {
    const stubInvoices: Record<string, unknown>[] = Array.from({ length: 1500 }, (_, index) => ({
      invoice_id: index + 1,
      status: "paid",
      asset: "TON",
      amount: "1",
      bot_invoice_url: "https://t.me/CryptoBot",
    }));
    // An invoice in fiat has no asset.
    stubInvoices.push({
      invoice_id: 1501,
      status: "paid",
      currency_type: "fiat",
      fiat: "USD",
      amount: "2",
      bot_invoice_url: "https://t.me/CryptoBot",
    });
    const stub = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const params = JSON.parse(Buffer.concat(chunks).toString()) as {
          offset: number;
          count: number;
        };
        const items = stubInvoices.slice(params.offset, params.offset + params.count);
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ ok: true, result: { items } }));
      });
    });
    stub.listen(0, "127.0.0.1");
    await once(stub, "listening");
    const { port } = stub.address() as AddressInfo;
    const paged = newProvider(
      new CryptoPayClient({ apiUrl: new URL(`http://127.0.0.1:${port}/api`), apiToken: TOKEN }),
    );

    const listed = [];
    for await (const transaction of paged.listTransactions()) listed.push(transaction);
    await new Promise<void>((resolve) => stub.close(() => resolve()));

    expect(listed).toHaveLength(1501);
    expect(listed[1500]).toMatchObject({ providerPaymentId: "1501", currency: "" });
    expect(listed[0]).toMatchObject({ providerPaymentId: "1", orderId: null, currency: "TON" });
  });
});
