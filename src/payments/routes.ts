/**
 * HTTP routes of payments: the Crypto Pay webhook, and admin routes that create invoices,
 * refund orders, run reconciliation and list mismatches.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { desc } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { DatabaseLike } from "../db/client.ts";
import {
  PAYMENT_MISMATCH_KINDS,
  PAYMENT_ORDER_STATES,
  PAYMENT_PROVIDERS,
  type PaymentOrder,
  paymentMismatches,
} from "../db/schema/index.ts";
import { invalidFieldError } from "../http/api/fields.ts";
import { adminRoute, errorResponses, jsonBody, jsonResponse } from "../http/api/routing.ts";
import { IdParamsSchema } from "../http/api/schemas.ts";
import { HttpError } from "../http/errors.ts";
import { InsufficientFundsError } from "../money/ledger/index.ts";
import {
  findOrder,
  InvalidPaymentRequestError,
  LANGUAGES,
  PaymentOrderNotFoundError,
  PaymentOrderStateError,
  type PaymentProvider,
  PaymentProviderError,
  RefundNotSupportedError,
} from "../money/payments/index.ts";
import { findChatLink } from "../telegram/links.ts";
import type { PaymentProviders } from "./providers.ts";
import {
  notifyPaymentCredit,
  type PaymentCreditListener,
  reconcileAndResume,
} from "./resume-after-credit.ts";

/** Path of the Crypto Pay webhook under `/api/v1`. */
export const CRYPTOPAY_WEBHOOK_PATH = "/payments/cryptopay/webhook";

const OrderSchema = z
  .object({
    id: z.string(),
    userId: z.string(),
    provider: z.enum(PAYMENT_PROVIDERS),
    tokens: z.string().openapi({ description: "Tokens in minor units, as a decimal string" }),
    price: z.string().openapi({ description: "Price in the provider's currency, such as 1.5" }),
    currency: z.string().openapi({ example: "XTR" }),
    state: z.enum(PAYMENT_ORDER_STATES),
    providerInvoiceId: z.string().nullable(),
    providerPaymentId: z.string().nullable(),
    expiresAt: z.string(),
    paidAt: z.string().nullable(),
    refundedAt: z.string().nullable(),
  })
  .openapi("PaymentOrder");

const CreateOrderSchema = z
  .object({
    userId: z.guid("expected the UUID of a user"),
    provider: z.enum(PAYMENT_PROVIDERS),
    tokens: z.number().int("expected a whole number of tokens").positive(),
    language: z.enum(LANGUAGES).default("en"),
    telegramChatId: z
      .number()
      .int()
      .optional()
      .openapi({ description: "Stars only: send the invoice to this chat instead of a link" }),
  })
  .strict()
  .openapi("PaymentOrderCreate");

const RefundSchema = z
  .object({
    externallyRefunded: z.boolean().default(false).openapi({
      description: "The money was returned outside the provider: record the refund only",
    }),
  })
  .strict()
  .openapi("PaymentRefund");

function toOrderBody(order: PaymentOrder) {
  const scale = order.priceScale;
  const digits = order.priceAmount.toString().padStart(scale + 1, "0");
  const price =
    scale === 0
      ? digits
      : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`.replace(/\.?0+$/, "");
  return {
    id: order.id,
    userId: order.userId,
    provider: order.provider,
    tokens: order.tokens.toString(),
    price,
    currency: order.priceCurrency,
    state: order.state,
    providerInvoiceId: order.providerInvoiceId,
    providerPaymentId: order.providerPaymentId,
    expiresAt: order.expiresAt.toISOString(),
    paidAt: order.paidAt?.toISOString() ?? null,
    refundedAt: order.refundedAt?.toISOString() ?? null,
  };
}

/** Maps payment errors to HTTP errors; other errors propagate to the 500 handler. */
function toHttpError(error: unknown): unknown {
  if (error instanceof InvalidPaymentRequestError) {
    return new HttpError(400, "invalid_request", error.message);
  }
  if (error instanceof PaymentOrderNotFoundError) {
    return new HttpError(404, "payment_order_not_found", error.message);
  }
  if (error instanceof PaymentOrderStateError || error instanceof InsufficientFundsError) {
    return new HttpError(409, "payment_order_conflict", error.message);
  }
  if (error instanceof RefundNotSupportedError) {
    return new HttpError(422, "refund_not_supported", error.message);
  }
  if (error instanceof PaymentProviderError) {
    return new HttpError(502, "payment_provider_failed", error.message);
  }
  return error;
}

function providerOf(
  providers: PaymentProviders,
  id: (typeof PAYMENT_PROVIDERS)[number],
): PaymentProvider<never> {
  const provider = id === "telegram_stars" ? providers.telegramStars : providers.cryptoPay;
  if (provider === undefined) {
    const variable = id === "telegram_stars" ? "PU_NODE_TELEGRAM_TOKEN" : "PU_NODE_CRYPTOPAY_TOKEN";
    throw new HttpError(
      422,
      "payment_provider_disabled",
      `Payment provider ${id} is not configured on this node; set ${variable} to enable it`,
    );
  }
  return provider as PaymentProvider<never>;
}

/** Registers the payment routes on an API app (mount point `/api/v1`). */
export function registerPaymentRoutes(
  app: OpenAPIHono,
  options: {
    db: DatabaseLike;
    providers: PaymentProviders;
    admin: MiddlewareHandler;
    /**
     * Called after a webhook or a reconciliation credited a payment; the node passes
     * `resumeUnitsOnCredit`.
     */
    onCredit?: PaymentCreditListener;
  },
): void {
  const { db, providers, admin } = options;
  registerCryptoPayWebhook(app, providers, options.onCredit);

  // Users without a linked Telegram chat cannot buy by themselves, because the node has no user
  // login: the administrator creates their invoices here. Linked users can also send /buy.

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/payments/orders",
      tags: ["Payments"],
      summary: "Create an order of paid tokens and its invoice",
      request: { body: jsonBody(CreateOrderSchema) },
      responses: {
        201: jsonResponse(
          z.object({ order: OrderSchema, url: z.string().nullable() }),
          "The order; `url` is where the user pays, null for an invoice sent into a chat",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const provider = providerOf(providers, body.provider);
      if (body.provider === "telegram_stars" && body.telegramChatId !== undefined) {
        await checkInvoiceChat(db, body.userId, body.telegramChatId);
      }
      try {
        const invoice = await provider.createInvoice({
          userId: body.userId,
          tokens: BigInt(body.tokens),
          language: body.language,
          telegramChatId: body.telegramChatId,
        });
        return c.json({ order: toOrderBody(invoice.order), url: invoice.url }, 201);
      } catch (error) {
        throw toHttpError(error);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/payments/orders/{id}",
      tags: ["Payments"],
      summary: "Read a payment order",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(OrderSchema, "The order"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const order = await findOrder(db, id);
      if (order === undefined) {
        throw new HttpError(404, "payment_order_not_found", `Payment order ${id} not found`);
      }
      return c.json(toOrderBody(order), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/payments/orders/{id}/refund",
      tags: ["Payments"],
      summary: "Refund a paid order and take its tokens back",
      request: {
        params: IdParamsSchema,
        // Optional, so a plain refund needs no body.
        body: { required: false, content: { "application/json": { schema: RefundSchema } } },
      },
      responses: {
        200: jsonResponse(OrderSchema, "The refunded order"),
        ...errorResponses(400, 401, 403, 404, 409, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json") as { externallyRefunded?: boolean } | undefined;
      const externallyRefunded = body?.externallyRefunded ?? false;
      const order = await findOrder(db, id);
      if (order === undefined) {
        throw new HttpError(404, "payment_order_not_found", `Payment order ${id} not found`);
      }
      try {
        const outcome = await providerOf(providers, order.provider).refund(id, {
          externallyRefunded,
        });
        return c.json(toOrderBody(outcome.order), 200);
      } catch (error) {
        throw toHttpError(error);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/payments/reconcile",
      tags: ["Payments"],
      summary: "Reconcile every configured provider now",
      responses: {
        200: jsonResponse(
          z.object({ reports: z.array(z.record(z.string(), z.union([z.string(), z.number()]))) }),
          "One report per provider",
        ),
        ...errorResponses(401, 403),
      },
    }),
    async (c) => {
      const reports = [];
      for (const provider of [providers.telegramStars, providers.cryptoPay]) {
        if (provider === undefined) continue;
        try {
          const { creditedUserIds: _users, ...counts } = await reconcileAndResume(
            db,
            provider,
            options.onCredit,
          );
          reports.push(counts);
        } catch (error) {
          throw toHttpError(error);
        }
      }
      return c.json({ reports }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/payments/mismatches",
      tags: ["Payments"],
      summary: "List the latest 100 payment mismatches",
      responses: {
        200: jsonResponse(
          z.object({
            items: z.array(
              z.object({
                id: z.number().int(),
                provider: z.enum(PAYMENT_PROVIDERS),
                kind: z.enum(PAYMENT_MISMATCH_KINDS),
                orderId: z.string().nullable(),
                providerPaymentId: z.string().nullable(),
                details: z.record(z.string(), z.unknown()),
                seenCount: z.number().int(),
                firstSeenAt: z.string(),
                lastSeenAt: z.string(),
              }),
            ),
          }),
          "Mismatches, the most recently seen first",
        ),
        ...errorResponses(401, 403),
      },
    }),
    async (c) => {
      const rows = await db
        .select()
        .from(paymentMismatches)
        .orderBy(desc(paymentMismatches.lastSeenAt))
        .limit(100);
      const items = rows.map((row) => ({
        ...row,
        firstSeenAt: row.firstSeenAt.toISOString(),
        lastSeenAt: row.lastSeenAt.toISOString(),
      }));
      return c.json({ items }, 200);
    },
  );
}

/**
 * `POST /payments/cryptopay/webhook`. The body is read as raw bytes and its signature checked
 * before anything parses it, so the route is a plain Hono route without a body schema.
 */
function registerCryptoPayWebhook(
  app: OpenAPIHono,
  providers: PaymentProviders,
  onCredit: PaymentCreditListener | undefined,
): void {
  app.openAPIRegistry.registerPath({
    method: "post",
    path: CRYPTOPAY_WEBHOOK_PATH,
    tags: ["Payments"],
    summary: "Receive Crypto Pay updates",
    description:
      "Crypto Pay calls this with an update such as `invoice_paid`. The `crypto-pay-api-signature` " +
      "header must be the hex HMAC-SHA-256 of the raw body keyed with SHA-256 of the app token.",
    responses: {
      200: { description: "The update was handled or deliberately ignored" },
      401: { description: "Missing or invalid signature" },
      400: { description: "A signed body that is not a Crypto Pay update" },
      404: { description: "Crypto Pay is not configured on this node" },
    },
  });
  app.post(CRYPTOPAY_WEBHOOK_PATH, async (c) => {
    const provider = providers.cryptoPay;
    if (provider === undefined) {
      throw new HttpError(
        404,
        "payment_provider_disabled",
        "Crypto Pay is not configured on this node; set PU_NODE_CRYPTOPAY_TOKEN to enable it",
      );
    }
    const body = new Uint8Array(await c.req.arrayBuffer());
    const result = await provider.handleNotification({
      body,
      signature: c.req.header("crypto-pay-api-signature"),
    });
    if (result.kind === "invalid_signature") {
      throw new HttpError(
        401,
        "invalid_signature",
        "The crypto-pay-api-signature header is missing or does not match the body",
      );
    }
    if (result.kind === "invalid_body") throw new HttpError(400, "invalid_request", result.message);
    if (onCredit !== undefined) await notifyPaymentCredit(result, onCredit);
    return c.json({ ok: true }, 200);
  });
}

/**
 * Raises a 400 when `chatId` is linked to another user than the order's, because a payment in
 * that chat would credit the order's user.
 */
async function checkInvoiceChat(db: DatabaseLike, userId: string, chatId: number): Promise<void> {
  const link = await findChatLink(db, chatId);
  if (link !== undefined && link.userId !== userId) {
    throw invalidFieldError(
      "body",
      "telegramChatId",
      `chat ${chatId} is linked to user ${link.userId}, not to ${userId}; send the invoice to the user's own chat or omit telegramChatId to get a payment link`,
    );
  }
}
