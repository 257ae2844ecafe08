/**
 * Telegram Stars through the Bot API (grammY's `Api`): invoices in `XTR` with an empty provider
 * token and exactly one price in whole Stars, the pre-checkout answer, crediting on
 * `successful_payment`, refunds with `refundStarPayment`, and reconciliation with
 * `getStarTransactions`.
 */
import { sql } from "drizzle-orm";
import { type Api, GrammyError } from "grammy";
import type { Message, PreCheckoutQuery, StarTransaction, Update } from "grammy/types";
import type { DatabaseLike } from "../../db/client.ts";
import type { PaymentOrder } from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";
import { InvalidPaymentRequestError, PaymentProviderError } from "./errors.ts";
import {
  checkOrderTokens,
  confirmPayment,
  createOrder,
  findOrder,
  isOrderId,
  markOrderFailed,
  type RefundOutcome,
  refundOrder,
} from "./orders.ts";
import type {
  CreatedInvoice,
  InvoiceRequest,
  NotificationResult,
  PaymentProvider,
  ProviderTransaction,
  RefundOptions,
} from "./provider.ts";
import { type PreCheckoutRejection, pickLanguage, textsFor } from "./texts.ts";

const logger = getNodeLogger("money", "payments", "telegram");

/** The currency code of Telegram Stars. */
export const STARS_CURRENCY = "XTR";
/** The largest page `getStarTransactions` returns. */
export const STAR_TRANSACTIONS_PAGE = 100;
/**
 * Telegram cancels a payment whose pre-checkout query has no answer within 10 seconds, so the
 * order check gets less than that and the answer is a rejection when the check runs out.
 */
export const DEFAULT_PRE_CHECKOUT_TIMEOUT_MS = 5000;

export interface TelegramStarsOptions {
  db: DatabaseLike;
  api: Api;
  /** Whole Stars one token costs. */
  starsPerToken: bigint;
  maxTokens: bigint;
  orderTtlSeconds: number;
  nodeName: string;
  preCheckoutTimeoutMs?: number;
  now?: () => Date;
}

/** The fields of a pre-checkout query that the order check reads. */
export type PreCheckoutFields = Pick<PreCheckoutQuery, "currency" | "total_amount" | "from">;

/**
 * Decides whether the payer may pay `order`: it must be a Stars order in state `created`, not
 * expired at `now`, for the same currency and amount, and for the payer the invoice was sent to.
 * Returns the reason to reject, or null to accept.
 */
export function checkPreCheckout(
  order: PaymentOrder | undefined,
  query: PreCheckoutFields,
  now: Date,
): PreCheckoutRejection | null {
  if (order === undefined || order.provider !== "telegram_stars") return "order_not_found";
  if (order.state === "paid" || order.state === "refunded") return "already_paid";
  if (order.state !== "created") return "not_payable";
  if (order.expiresAt <= now) return "expired";
  if (query.currency !== order.priceCurrency) return "currency_mismatch";
  if (BigInt(query.total_amount) !== order.priceAmount) return "amount_mismatch";
  if (order.payerRef !== null && order.payerRef !== String(query.from.id)) return "wrong_payer";
  return null;
}

/** Maps an entry of `getStarTransactions` to a payment or refund, or null for anything else. */
export function toProviderTransaction(transaction: StarTransaction): ProviderTransaction | null {
  const base = {
    providerPaymentId: transaction.id,
    providerInvoiceId: null,
    amount: String(transaction.amount),
    currency: STARS_CURRENCY,
  };
  const source = transaction.source;
  if (source?.type === "user" && source.transaction_type === "invoice_payment") {
    return {
      ...base,
      kind: "payment",
      orderId: source.invoice_payload ?? null,
      payerRef: String(source.user.id),
    };
  }
  const receiver = transaction.receiver;
  if (receiver?.type === "user" && receiver.transaction_type === "invoice_payment") {
    // A refund has the id of the payment it returns.
    return { ...base, kind: "refund", orderId: null, payerRef: String(receiver.user.id) };
  }
  return null;
}

export class TelegramStarsProvider implements PaymentProvider<Update> {
  readonly id = "telegram_stars" as const;
  readonly #options: TelegramStarsOptions;
  readonly #now: () => Date;

  constructor(options: TelegramStarsOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** Sends the invoice into `telegramChatId`, or creates an invoice link without one. */
  async createInvoice(request: InvoiceRequest): Promise<CreatedInvoice> {
    const { db, api } = this.#options;
    checkOrderTokens(request.tokens, this.#options.maxTokens);
    const stars = request.tokens * this.#options.starsPerToken;
    if (stars > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InvalidPaymentRequestError(
        "tokens",
        `${request.tokens} tokens cost ${stars} Stars, more than one invoice can carry`,
      );
    }
    const chatId = request.telegramChatId;
    const order = await createOrder(db, {
      userId: request.userId,
      provider: this.id,
      tokens: request.tokens,
      price: { amount: stars, currency: STARS_CURRENCY, scale: 0 },
      expiresAt: new Date(this.#now().getTime() + this.#options.orderTtlSeconds * 1000),
      // In a private chat the chat id is the user id; anyone in a group may pay.
      payerRef: chatId !== undefined && chatId > 0 ? String(chatId) : null,
    });

    const texts = textsFor(request.language);
    const title = texts.invoiceTitle(request.tokens);
    const description = texts.invoiceDescription(request.tokens, this.#options.nodeName);
    const prices = [{ label: texts.priceLabel, amount: Number(stars) }];
    try {
      if (chatId !== undefined) {
        await api.sendInvoice(chatId, title, description, order.id, STARS_CURRENCY, prices);
        return { order, url: null };
      }
      const url = await api.createInvoiceLink(
        title,
        description,
        order.id,
        "",
        STARS_CURRENCY,
        prices,
      );
      return { order, url };
    } catch (error) {
      // grammY raises GrammyError for an API error and HttpError for a network failure.
      const message = String(error);
      await markOrderFailed(db, order.id, message);
      const method = chatId === undefined ? "createInvoiceLink" : "sendInvoice";
      throw new PaymentProviderError(this.id, method, message, error);
    }
  }

  /** Answers a `pre_checkout_query` and credits a `successful_payment`; ignores other updates. */
  async handleNotification(update: Update): Promise<NotificationResult> {
    if (update.pre_checkout_query !== undefined) {
      return await this.#answerPreCheckout(update.pre_checkout_query);
    }
    const payment = update.message?.successful_payment;
    if (payment !== undefined) {
      return await this.#creditPayment(update.message as Message, payment);
    }
    return { kind: "ignored", reason: `update ${update.update_id} is no payment update` };
  }

  async #answerPreCheckout(query: PreCheckoutQuery): Promise<NotificationResult> {
    let rejection: PreCheckoutRejection | null;
    try {
      rejection = await this.#checkPreCheckoutQuery(query);
    } catch (error) {
      // The payer gets an answer before Telegram's deadline even when the check fails.
      logger.error("Pre-checkout check of order {orderId} failed: {error}", {
        orderId: query.invoice_payload,
        error,
      });
      rejection = "busy";
    }

    if (rejection === null) {
      await this.#options.api.answerPreCheckoutQuery(query.id, true);
      return { kind: "pre_checkout", ok: true };
    }
    const language = pickLanguage(query.from.language_code);
    await this.#options.api.answerPreCheckoutQuery(query.id, false, {
      error_message: textsFor(language).preCheckout[rejection],
    });
    logger.info("Rejected pre-checkout of order {orderId} by Telegram user {userId}: {rejection}", {
      orderId: query.invoice_payload,
      userId: query.from.id,
      rejection,
    });
    return { kind: "pre_checkout", ok: false, rejection };
  }

  async #checkPreCheckoutQuery(query: PreCheckoutQuery): Promise<PreCheckoutRejection | null> {
    const payload = query.invoice_payload;
    if (!isOrderId(payload)) return "order_not_found";
    const timeoutMs = this.#options.preCheckoutTimeoutMs ?? DEFAULT_PRE_CHECKOUT_TIMEOUT_MS;
    // The deadline covers the wait for a pool connection and BEGIN too, which statement_timeout
    // does not. The server-side limit, at twice the deadline, only ends a query that no caller awaits.
    const lookup = this.#options.db.transaction(async (tx) => {
      await tx.execute(sql`select set_config('statement_timeout', ${String(timeoutMs * 2)}, true)`);
      return await findOrder(tx, payload);
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the order check took longer than ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const order = await Promise.race([lookup, deadline]);
      return checkPreCheckout(order, query, this.#now());
    } finally {
      clearTimeout(timer);
    }
  }

  async #creditPayment(
    message: Message,
    payment: NonNullable<Message["successful_payment"]>,
  ): Promise<NotificationResult> {
    const outcome = await confirmPayment(this.#options.db, {
      provider: this.id,
      orderId: payment.invoice_payload,
      providerPaymentId: payment.telegram_payment_charge_id,
      providerInvoiceId: null,
      amount: String(payment.total_amount),
      currency: payment.currency,
      payerRef: message.from === undefined ? null : String(message.from.id),
    });
    return { kind: "payment", outcome };
  }

  /**
   * Refunds with `refundStarPayment` to the user who paid. Telegram's `CHARGE_ALREADY_REFUNDED`
   * counts as done, so a refund whose commit failed after Telegram returned the Stars can be
   * repeated.
   */
  async refund(orderId: string, options: RefundOptions = {}): Promise<RefundOutcome> {
    const api = this.#options.api;
    const refundAtProvider = async (order: PaymentOrder) => {
      if (order.payerRef === null) {
        throw new PaymentProviderError(
          this.id,
          "refundStarPayment",
          `order ${order.id} has no payer's Telegram user id; refund it by hand and record it with externallyRefunded`,
        );
      }
      try {
        await api.refundStarPayment(Number(order.payerRef), order.providerPaymentId as string);
      } catch (error) {
        if (error instanceof GrammyError && error.description.includes("CHARGE_ALREADY_REFUNDED")) {
          return;
        }
        throw new PaymentProviderError(this.id, "refundStarPayment", String(error), error);
      }
    };
    return await refundOrder(this.#options.db, {
      provider: this.id,
      orderId,
      ...(options.externallyRefunded === true ? {} : { refundAtProvider }),
    });
  }

  /** Pages through `getStarTransactions` from the oldest transaction. */
  async *listTransactions(): AsyncIterable<ProviderTransaction> {
    let offset = 0;
    for (;;) {
      const page = await this.#options.api.getStarTransactions({
        offset,
        limit: STAR_TRANSACTIONS_PAGE,
      });
      for (const transaction of page.transactions) {
        const mapped = toProviderTransaction(transaction);
        if (mapped !== null) yield mapped;
      }
      if (page.transactions.length < STAR_TRANSACTIONS_PAGE) return;
      offset += page.transactions.length;
    }
  }
}
