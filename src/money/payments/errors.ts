/** Errors of the payment code. Each message names the value at fault and what to do about it. */
import type { PaymentOrderState, PaymentProviderId } from "../../db/schema/index.ts";

/** Raised for an invoice or refund request that is invalid before any provider is called. */
export class InvalidPaymentRequestError extends Error {
  readonly field: string;
  /** The problem with the value, without the field name. */
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(`Invalid payment request field ${field}: ${reason}`);
    this.name = "InvalidPaymentRequestError";
    this.field = field;
    this.reason = reason;
  }
}

/** Raised when no order of the provider has the id. */
export class PaymentOrderNotFoundError extends Error {
  readonly orderId: string;

  constructor(provider: PaymentProviderId, orderId: string) {
    super(`Payment order ${orderId} of provider ${provider} not found: check the order id`);
    this.name = "PaymentOrderNotFoundError";
    this.orderId = orderId;
  }
}

/** Raised when an order is not in a state that allows the requested action. */
export class PaymentOrderStateError extends Error {
  readonly orderId: string;
  readonly state: PaymentOrderState;

  constructor(orderId: string, state: PaymentOrderState, action: string) {
    super(
      `Cannot ${action} payment order ${orderId}: it is ${state}, and only paid orders allow it`,
    );
    this.name = "PaymentOrderStateError";
    this.orderId = orderId;
    this.state = state;
  }
}

/** Raised when a payment provider's API call fails or returns an unusable response. */
export class PaymentProviderError extends Error {
  readonly provider: PaymentProviderId;
  readonly method: string;

  constructor(provider: PaymentProviderId, method: string, message: string, cause?: unknown) {
    super(`Payment provider ${provider} call ${method} failed: ${message}`, { cause });
    this.name = "PaymentProviderError";
    this.provider = provider;
    this.method = method;
  }
}

/** Raised for a refund that the provider's API cannot make. */
export class RefundNotSupportedError extends Error {
  constructor(provider: PaymentProviderId, reason: string) {
    super(
      `Payment provider ${provider} cannot refund through its API: ${reason}. Return the money ` +
        "yourself, then record the refund with externallyRefunded: true.",
    );
    this.name = "RefundNotSupportedError";
  }
}
