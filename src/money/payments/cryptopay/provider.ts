/**
 * Crypto Pay: invoices in one crypto asset, the `invoice_paid` webhook verified against the raw
 * body before it is parsed, and reconciliation with `getInvoices`. The API has no refund of an
 * invoice, so refunds are recorded after the money was returned by hand.
 */
import { z } from "zod";
import type { DatabaseLike } from "../../../db/client.ts";
import { getNodeLogger } from "../../../logging.ts";
import { RefundNotSupportedError } from "../errors.ts";
import {
  checkOrderTokens,
  confirmPayment,
  createOrder,
  markOrderFailed,
  type RefundOutcome,
  recordInvoiceId,
  refundOrder,
} from "../orders.ts";
import { formatDecimal, multiplyPrice, type Price } from "../price.ts";
import type {
  CreatedInvoice,
  InvoiceRequest,
  NotificationResult,
  PaymentProvider,
  ProviderTransaction,
  RefundOptions,
} from "../provider.ts";
import { textsFor } from "../texts.ts";
import {
  CRYPTOPAY_INVOICES_PAGE,
  type CryptoPayClient,
  type CryptoPayInvoice,
  CryptoPayInvoiceSchema,
} from "./client.ts";
import { verifyCryptoPaySignature } from "./signature.ts";

const logger = getNodeLogger("money", "payments", "cryptopay");

/** A webhook request as it arrived: the exact body bytes and the signature header. */
export interface CryptoPayWebhook {
  body: Uint8Array;
  signature: string | undefined;
}

const WebhookUpdateSchema = z.object({
  update_id: z.number().int(),
  update_type: z.string(),
  request_date: z.string(),
  payload: CryptoPayInvoiceSchema,
});

export interface CryptoPayOptions {
  db: DatabaseLike;
  client: CryptoPayClient;
  /** The app's API token, which also keys the webhook signature. */
  apiToken: string;
  /** Price of one token in the asset, such as 0.01 USDT. */
  tokenPrice: Price;
  maxTokens: bigint;
  orderTtlSeconds: number;
  nodeName: string;
  now?: () => Date;
}

/** Maps a paid Crypto Pay invoice to a payment; its id is both invoice and payment id. */
export function invoiceToTransaction(invoice: CryptoPayInvoice): ProviderTransaction {
  const id = String(invoice.invoice_id);
  return {
    kind: "payment",
    providerPaymentId: id,
    providerInvoiceId: id,
    orderId: invoice.payload ?? null,
    amount: invoice.amount,
    currency: invoice.asset ?? "",
    payerRef: null,
  };
}

export class CryptoPayProvider implements PaymentProvider<CryptoPayWebhook> {
  readonly id = "cryptopay" as const;
  readonly #options: CryptoPayOptions;
  readonly #now: () => Date;

  constructor(options: CryptoPayOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async createInvoice(request: InvoiceRequest): Promise<CreatedInvoice> {
    const { db, client, tokenPrice } = this.#options;
    checkOrderTokens(request.tokens, this.#options.maxTokens);
    const price = multiplyPrice(tokenPrice, request.tokens);
    const order = await createOrder(db, {
      userId: request.userId,
      provider: this.id,
      tokens: request.tokens,
      price,
      expiresAt: new Date(this.#now().getTime() + this.#options.orderTtlSeconds * 1000),
      payerRef: null,
    });

    let invoice: CryptoPayInvoice;
    try {
      invoice = await client.createInvoice({
        currency_type: "crypto",
        asset: price.currency,
        amount: formatDecimal(price.amount, price.scale),
        description: textsFor(request.language).invoiceDescription(
          request.tokens,
          this.#options.nodeName,
        ),
        payload: order.id,
        expires_in: this.#options.orderTtlSeconds,
        allow_comments: false,
      });
    } catch (error) {
      await markOrderFailed(db, order.id, (error as Error).message);
      throw error;
    }
    await recordInvoiceId(db, order.id, String(invoice.invoice_id));
    return {
      order: { ...order, providerInvoiceId: String(invoice.invoice_id) },
      url: invoice.bot_invoice_url,
    };
  }

  /**
   * Verifies the signature over the exact body bytes, and only then parses the body. An
   * `invoice_paid` update credits its order once, whatever the number of deliveries.
   */
  async handleNotification(webhook: CryptoPayWebhook): Promise<NotificationResult> {
    if (!verifyCryptoPaySignature(this.#options.apiToken, webhook.body, webhook.signature)) {
      logger.warning("Rejected a Crypto Pay webhook with a missing or invalid signature");
      return { kind: "invalid_signature" };
    }
    let update: z.infer<typeof WebhookUpdateSchema>;
    try {
      update = WebhookUpdateSchema.parse(JSON.parse(Buffer.from(webhook.body).toString("utf8")));
    } catch (error) {
      // A zod error's message is its issues as pretty-printed JSON, so list path and message.
      const reason =
        error instanceof z.ZodError
          ? error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")
          : (error as Error).message;
      const message = `the body is not a Crypto Pay update: ${reason}`;
      logger.error("Signed Crypto Pay webhook with an unusable body: {message}", { message });
      return { kind: "invalid_body", message };
    }
    if (update.update_type !== "invoice_paid" || update.payload.status !== "paid") {
      return {
        kind: "ignored",
        reason: `update ${update.update_id} is ${update.update_type} of a ${update.payload.status} invoice`,
      };
    }
    const outcome = await confirmPayment(this.#options.db, {
      provider: this.id,
      ...invoiceToTransaction(update.payload),
    });
    return { kind: "payment", outcome };
  }

  /**
   * Records a refund made outside the API. Without `externallyRefunded` it raises
   * {@link RefundNotSupportedError}, because Crypto Pay cannot return an invoice payment.
   */
  async refund(orderId: string, options: RefundOptions = {}): Promise<RefundOutcome> {
    if (options.externallyRefunded !== true) {
      throw new RefundNotSupportedError(this.id, "the Crypto Pay API has no refund of invoices");
    }
    return await refundOrder(this.#options.db, { provider: this.id, orderId });
  }

  /** Pages through the paid invoices with `getInvoices`. */
  async *listTransactions(): AsyncIterable<ProviderTransaction> {
    let offset = 0;
    for (;;) {
      const invoices = await this.#options.client.getInvoices({
        status: "paid",
        offset,
        count: CRYPTOPAY_INVOICES_PAGE,
      });
      for (const invoice of invoices) yield invoiceToTransaction(invoice);
      if (invoices.length < CRYPTOPAY_INVOICES_PAGE) return;
      offset += invoices.length;
    }
  }
}
