/**
 * A Unit stopped for an unpaid charge gets its broker access back as soon as the Crypto Pay
 * webhook of its owner's payment is handled, or a reconciliation credits a payment whose webhook
 * was lost, before the billing job's next check.
 */
import { randomUUID } from "node:crypto";
import { type ServerType, serve } from "@hono/node-server";
import { OpenAPIHono } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FakeCryptoPay } from "../../test/fakes/cryptopay.ts";
import { type FakeEmqxBridges, startFakeEmqxBridges } from "../../test/fakes/emqx-bridges.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { stopUnit } from "../billing/stopping.ts";
import { EmqxUnitAccess } from "../billing/unit-access.ts";
import { repos, unitBillingState, unitNodes, units } from "../db/schema/index.ts";
import { handleApiError } from "../http/api/failures.ts";
import { requireAdminToken } from "../http/auth.ts";
import { EmqxTransport } from "../metering/emqx/transport.ts";
import { CryptoPayClient, CryptoPayProvider, parseDecimalPrice } from "../money/payments/index.ts";
import { notifyPaymentCredit, resumeUnitsOnCredit } from "./resume-after-credit.ts";
import { registerPaymentRoutes } from "./routes.ts";
import { createUser } from "./test-support.ts";

const TOKEN = "12345:AAresumeCryptoPayToken";
const DOMAIN = "unit.example.com";

let database: TestDatabase;
let cryptoPay: FakeCryptoPay;
let emqx: FakeEmqxBridges;
let access: EmqxUnitAccess;
let provider: CryptoPayProvider;
let server: ServerType;
let webhookUrl: URL;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "payments_resume");
  cryptoPay = new FakeCryptoPay({ token: TOKEN });
  await cryptoPay.start();
  emqx = await startFakeEmqxBridges();
  access = new EmqxUnitAccess(
    new EmqxTransport({ url: emqx.url, apiKey: emqx.apiKey, apiSecret: emqx.apiSecret }),
    DOMAIN,
  );
  provider = new CryptoPayProvider({
    db: database.db,
    client: new CryptoPayClient({ apiUrl: cryptoPay.apiUrl, apiToken: TOKEN }),
    apiToken: TOKEN,
    tokenPrice: parseDecimalPrice("0.015", "USDT"),
    maxTokens: 10_000n,
    orderTtlSeconds: 600,
    nodeName: "Test node",
  });

  const api = new OpenAPIHono();
  api.onError(handleApiError);
  registerPaymentRoutes(api, {
    db: database.db,
    providers: { telegramStars: undefined, cryptoPay: provider },
    admin: requireAdminToken("c".repeat(64)),
    onCredit: resumeUnitsOnCredit({ db: database.db, access }),
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
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await cryptoPay?.stop();
  await emqx?.stop();
  await database?.drop();
});

/** Creates a user with a Unit that billing stopped for a charge the balance could not pay. */
async function stoppedUnit(): Promise<{ userId: string; unitId: string; nodeId: string }> {
  const db = database.db;
  const userId = await createUser(db);
  const [repo] = await db
    .insert(repos)
    .values({
      name: `r-${randomUUID()}`,
      repositoryUrl: "https://git.example.com/r",
      platform: "Gitlab",
    })
    .returning({ id: repos.id });
  const [unit] = await db
    .insert(units)
    .values({ repoId: (repo as { id: string }).id, ownerId: userId, name: `u-${randomUUID()}` })
    .returning({ id: units.id });
  const unitId = (unit as { id: string }).id;
  const [node] = await db
    .insert(unitNodes)
    .values({ unitId, type: "Output", topicName: "temp/pepeunit" })
    .returning({ id: unitNodes.id });
  await stopUnit(
    { db, access },
    {
      unitId,
      ownerId: userId,
      reason: "balance_exhausted",
      chargeKey: `usage:${unitId}:2027-03-01T10:00:00.000Z`,
      charged: 0n,
    },
  );
  return { userId, unitId, nodeId: (node as { id: string }).id };
}

async function billingState(unitId: string) {
  const [row] = await database.db
    .select()
    .from(unitBillingState)
    .where(eq(unitBillingState.unitId, unitId));
  return row;
}

describe("payment credit", () => {
  it("resumes stopped Units on the webhook", async () => {
    const { userId, unitId, nodeId } = await stoppedUnit();
    expect((await billingState(unitId))?.state).toBe("stopped");
    expect(emqx.allRules.map((rule) => rule.topic)).toContain(`${DOMAIN}/${nodeId}/#`);
    const { order } = await provider.createInvoice({ userId, tokens: 100n, language: "en" });
    const invoice = cryptoPay.markPaid(Number(order.providerInvoiceId));

    const response = await cryptoPay.sendWebhook(webhookUrl, cryptoPay.webhookBody(invoice));

    expect(response.status).toBe(200);
    const state = await billingState(unitId);
    expect(state?.state).toBe("active");
    expect(state?.brokerApplied).toBe(true);
    const topics = emqx.allRules.map((rule) => rule.topic);
    expect(topics).not.toContain(`${DOMAIN}/${nodeId}/#`);
    expect(topics).not.toContain(`${DOMAIN}/+/${unitId}/+/pepeunit`);
  });

  it("resumes stopped Units on reconciliation", async () => {
    const { userId, unitId } = await stoppedUnit();
    const { order } = await provider.createInvoice({ userId, tokens: 100n, language: "en" });
    // Paid at the provider, but the webhook never arrived.
    cryptoPay.markPaid(Number(order.providerInvoiceId));

    const response = await fetch(new URL("../reconcile", webhookUrl), {
      method: "POST",
      headers: { authorization: `Bearer ${"c".repeat(64)}` },
    });

    expect(response.status).toBe(200);
    const { reports } = (await response.json()) as { reports: Record<string, unknown>[] };
    expect(reports[0]).toMatchObject({ provider: "cryptopay", credited: 1 });
    expect(reports[0]).not.toHaveProperty("creditedUserIds");
    const state = await billingState(unitId);
    expect(state?.state).toBe("active");
    expect(state?.brokerApplied).toBe(true);
  });

  it("keeps Units of an unpaid invoice stopped", async () => {
    const { userId, unitId } = await stoppedUnit();
    const { order } = await provider.createInvoice({ userId, tokens: 5n, language: "en" });
    const active = cryptoPay.invoices.get(Number(order.providerInvoiceId));

    const response = await cryptoPay.sendWebhook(
      webhookUrl,
      cryptoPay.webhookBody(active as NonNullable<typeof active>),
    );

    expect(response.status).toBe(200);
    expect((await billingState(unitId))?.state).toBe("stopped");
  });

  it("leaves a failed broker call to the job", async () => {
    const { userId, unitId } = await stoppedUnit();
    const failing = resumeUnitsOnCredit({
      db: database.db,
      access: {
        kind: "emqx",
        revoke: () => Promise.reject(new Error("broker down")),
        restore: () => Promise.reject(new Error("broker down")),
      },
    });
    const { order } = await provider.createInvoice({ userId, tokens: 10n, language: "en" });
    const invoice = cryptoPay.markPaid(Number(order.providerInvoiceId));
    const body = cryptoPay.webhookBody(invoice);
    const result = await provider.handleNotification({
      body: Buffer.from(body),
      signature: cryptoPay.sign(body),
    });

    await notifyPaymentCredit(result, failing);

    // The state is written before the broker call, so the billing job retries only the broker.
    const state = await billingState(unitId);
    expect(state?.state).toBe("active");
    expect(state?.brokerApplied).toBe(false);
    expect(state?.brokerError).toMatch(/broker down/);
  });
});
