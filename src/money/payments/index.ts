export {
  CRYPTOPAY_API_URL,
  CryptoPayClient,
  type CryptoPayClientOptions,
} from "./cryptopay/client.ts";
export {
  type CryptoPayOptions,
  CryptoPayProvider,
  type CryptoPayWebhook,
} from "./cryptopay/provider.ts";
export { signCryptoPayBody, verifyCryptoPaySignature } from "./cryptopay/signature.ts";
export {
  InvalidPaymentRequestError,
  PaymentOrderNotFoundError,
  PaymentOrderStateError,
  PaymentProviderError,
  RefundNotSupportedError,
} from "./errors.ts";
export { recordMismatch } from "./mismatches.ts";
export {
  type ConfirmedPayment,
  type ConfirmOutcome,
  confirmPayment,
  expireOrders,
  findOrder,
  paymentPostingKey,
  type RefundOutcome,
  refundOrder,
  refundPostingKey,
} from "./orders.ts";
export { formatDecimal, type Price, parseDecimalPrice } from "./price.ts";
export type {
  CreatedInvoice,
  InvoiceRequest,
  NotificationResult,
  PaymentProvider,
  ProviderTransaction,
  RefundOptions,
} from "./provider.ts";
export { type ReconciliationReport, reconcilePayments } from "./reconcile.ts";
export { type TelegramStarsOptions, TelegramStarsProvider } from "./telegram-stars.ts";
export { LANGUAGES, type Language, pickLanguage } from "./texts.ts";
