import { OpenAPIHono } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FakeCryptoPay } from "../../test/fakes/cryptopay.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { paymentOrders, telegramLinks } from "../db/schema/index.ts";
import { handleApiError } from "../http/api/failures.ts";
import { requireAdminToken } from "../http/auth.ts";
import { createPaymentProviders } from "./providers.ts";
import { registerPaymentRoutes } from "./routes.ts";
import { createUser } from "./test-support.ts";

const ADMIN = "b".repeat(64);
const TOKEN = "777:AAroutesTestToken";

let database: TestDatabase;
let fake: FakeCryptoPay;
let app: OpenAPIHono;
let starsOnly: OpenAPIHono;

function request(target: OpenAPIHono, path: string, body?: unknown) {
  return target.request(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function buildApp(env: Record<string, string>): OpenAPIHono {
  const config = loadConfig({ PU_NODE_ENV: "test", ...env });
  const api = new OpenAPIHono();
  api.onError(handleApiError);
  registerPaymentRoutes(api, {
    db: database.db,
    providers: createPaymentProviders(config, database.db),
    admin: requireAdminToken(ADMIN),
  });
  return api;
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "payments_routes");
  fake = new FakeCryptoPay({ token: TOKEN });
  await fake.start();
  app = buildApp({
    PU_NODE_CRYPTOPAY_TOKEN: TOKEN,
    PU_NODE_CRYPTOPAY_API_URL: fake.apiUrl.href,
    PU_NODE_CRYPTOPAY_ASSET: "TON",
    PU_NODE_TOKEN_PRICE_CRYPTOPAY: "0.25",
  });
  starsOnly = buildApp({ PU_NODE_TELEGRAM_TOKEN: "1:unused" });
});

afterAll(async () => {
  await fake.stop();
  await database.drop();
});

describe("Crypto Pay token price", () => {
  it("rejects an unusable price at start", () => {
    const cases = [
      { value: "0", reason: /"0" must be above 0/ },
      { value: "0.0000000000000000001", reason: /at most 18 decimal places/ },
      { value: "1,5", reason: /"1,5" is not a decimal number/ },
    ];
    for (const { value, reason } of cases) {
      const start = () =>
        buildApp({ PU_NODE_CRYPTOPAY_TOKEN: TOKEN, PU_NODE_TOKEN_PRICE_CRYPTOPAY: value });
      expect(start, value).toThrow(ConfigError);
      expect(start, value).toThrow(/PU_NODE_TOKEN_PRICE_CRYPTOPAY/);
      expect(start, value).toThrow(reason);
    }
  });
});

describe("payment routes", () => {
  it("creates and reads an order", async () => {
    const userId = await createUser(database.db);

    const created = await request(app, "/payments/orders", {
      userId,
      provider: "cryptopay",
      tokens: 6,
    });
    expect(created.status).toBe(201);
    const body = (await created.json()) as { order: { id: string; price: string }; url: string };
    expect(body.order.price).toBe("1.5");
    expect(body.url).toMatch(/^https:\/\/t\.me\/CryptoBot/);

    const read = await request(app, `/payments/orders/${body.order.id}`);
    expect(read.status).toBe(200);
    expect(((await read.json()) as { currency: string }).currency).toBe("TON");
  });

  it("rejects a Stars invoice into another user's chat", async () => {
    const owner = await createUser(database.db);
    const payer = await createUser(database.db);
    await database.db
      .insert(telegramLinks)
      .values({ userId: owner, chatId: 700_501, telegramUserId: 700_501, language: "en" });

    const response = await request(starsOnly, "/payments/orders", {
      userId: payer,
      provider: "telegram_stars",
      tokens: 5,
      telegramChatId: 700_501,
    });

    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toContain(`chat 700501 is linked to user ${owner}, not to ${payer}`);
    const orders = await database.db
      .select()
      .from(paymentOrders)
      .where(eq(paymentOrders.userId, payer));
    expect(orders).toHaveLength(0);
  });

  it("maps errors to statuses", async () => {
    const userId = await createUser(database.db);
    const unknownId = "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44";

    const disabled = await request(app, "/payments/orders", {
      userId,
      provider: "telegram_stars",
      tokens: 1,
    });
    const tooMany = await request(app, "/payments/orders", {
      userId,
      provider: "cryptopay",
      tokens: 1_000_000,
    });
    const missing = await request(app, `/payments/orders/${unknownId}`);
    const refundMissing = await request(app, `/payments/orders/${unknownId}/refund`, {});
    const unauthorized = await app.request("/payments/mismatches");
    const noWebhook = await starsOnly.request("/payments/cryptopay/webhook", {
      method: "POST",
      body: "{}",
    });

    expect(disabled.status).toBe(422);
    expect(tooMany.status).toBe(400);
    expect(missing.status).toBe(404);
    expect(refundMissing.status).toBe(404);
    expect(unauthorized.status).toBe(401);
    expect(noWebhook.status).toBe(404);
  });

  it("refuses refund of unpaid order", async () => {
    const userId = await createUser(database.db);
    const created = await request(app, "/payments/orders", {
      userId,
      provider: "cryptopay",
      tokens: 2,
    });
    const { order } = (await created.json()) as { order: { id: string } };

    const response = await request(app, `/payments/orders/${order.id}/refund`, {});
    // The body is optional, so a plain refund without one gets the same response.
    const withoutBody = await app.request(`/payments/orders/${order.id}/refund`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}` },
    });

    expect(response.status).toBe(422);
    expect(withoutBody.status).toBe(422);
    expect(((await withoutBody.json()) as { error: { code: string } }).error.code).toBe(
      "refund_not_supported",
    );
    const external = await request(app, `/payments/orders/${order.id}/refund`, {
      externallyRefunded: true,
    });
    expect(external.status).toBe(409);
  });

  it("reconciles and lists mismatches", async () => {
    const userId = await createUser(database.db);
    const created = await request(app, "/payments/orders", {
      userId,
      provider: "cryptopay",
      tokens: 4,
    });
    const { order } = (await created.json()) as { order: { id: string } };
    const invoice = [...fake.invoices.values()].find((entry) => entry.payload === order.id);
    fake.markPaid((invoice as { invoice_id: number }).invoice_id).amount = "100";

    const reconcile = await request(app, "/payments/reconcile", {});
    const mismatches = await request(app, "/payments/mismatches");

    expect(reconcile.status).toBe(200);
    const reports = ((await reconcile.json()) as { reports: { mismatches: number }[] }).reports;
    expect(reports).toHaveLength(1);
    expect(reports[0]?.mismatches).toBe(1);
    const items = ((await mismatches.json()) as { items: { kind: string; orderId: string }[] })
      .items;
    expect(items).toContainEqual(
      expect.objectContaining({ kind: "amount_mismatch", orderId: order.id }),
    );
  });
});
