/** The one interface behind which every payment provider works. */
import type { PaymentOrder, PaymentProviderId } from "../../db/schema/index.ts";
import type { ConfirmOutcome, RefundOutcome } from "./orders.ts";
import type { Language, PreCheckoutRejection } from "./texts.ts";

export interface InvoiceRequest {
  userId: string;
  /** Tokens to credit on payment, in the ledger's minor units. */
  tokens: bigint;
  /** Language of the invoice texts. */
  language: Language;
  /**
   * Telegram Stars only: the chat to send the invoice to. Without it the provider returns an
   * invoice link. An invoice sent to a private chat may only be paid by that chat's user.
   */
  telegramChatId?: number | undefined;
}

export interface CreatedInvoice {
  order: PaymentOrder;
  /** The payment page URL; null when the invoice was sent into a Telegram chat. */
  url: string | null;
}

/** One entry of a provider's own list of transactions, for reconciliation. */
export interface ProviderTransaction {
  kind: "payment" | "refund";
  /** For a refund, the id of the payment it returns. */
  providerPaymentId: string;
  providerInvoiceId: string | null;
  /** The order id the invoice carried, or null. */
  orderId: string | null;
  /** Decimal amount in `currency` units, as the provider writes it. */
  amount: string;
  currency: string;
  payerRef: string | null;
}

/** The outcome of handling one provider notification. */
export type NotificationResult =
  | { kind: "ignored"; reason: string }
  | { kind: "invalid_signature" }
  | { kind: "invalid_body"; message: string }
  | { kind: "pre_checkout"; ok: true }
  | { kind: "pre_checkout"; ok: false; rejection: PreCheckoutRejection }
  | { kind: "payment"; outcome: ConfirmOutcome };

export interface RefundOptions {
  /**
   * The money was returned outside the provider's API: record the refund in the ledger and the
   * order without calling the provider.
   */
  externallyRefunded?: boolean | undefined;
}

/**
 * A payment provider. Implementations credit tokens only through `confirmPayment` and refund
 * only through `refundOrder` (`orders.ts`), which keep the ledger and `payment_orders` in step.
 */
export interface PaymentProvider<Notification> {
  readonly id: PaymentProviderId;
  /** Stores an order and creates its invoice at the provider. */
  createInvoice(request: InvoiceRequest): Promise<CreatedInvoice>;
  /** Handles one notification of the provider (an update or a webhook request). */
  handleNotification(notification: Notification): Promise<NotificationResult>;
  /** Returns the money of a paid order and takes its tokens back. */
  refund(orderId: string, options?: RefundOptions): Promise<RefundOutcome>;
  /** Yields every payment and refund that the provider lists for this account. */
  listTransactions(): AsyncIterable<ProviderTransaction>;
}
