/**
 * Prices in provider units as exact integers: `amount` minor units with `scale` decimal places,
 * so 1.25 USDT is `{ amount: 125n, scale: 2 }`. No floating-point number touches a price.
 */
import { InvalidPaymentRequestError } from "./errors.ts";

export interface Price {
  amount: bigint;
  /** `XTR` for Telegram Stars, or a Crypto Pay asset such as `USDT`. */
  currency: string;
  /** Decimal places of `amount`, from 0 to {@link MAX_PRICE_SCALE}. */
  scale: number;
}

export const MAX_PRICE_SCALE = 18;

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/** Parses a positive decimal such as `0.015` into a {@link Price}, keeping every digit. */
export function parseDecimalPrice(text: string, currency: string): Price {
  const match = DECIMAL.exec(text);
  const fraction = match?.[2] ?? "";
  if (match === null || fraction.length > MAX_PRICE_SCALE) {
    throw new InvalidPaymentRequestError(
      "price",
      `${JSON.stringify(text)} is not a decimal number with at most ${MAX_PRICE_SCALE} decimal places, such as 0.015`,
    );
  }
  const amount = BigInt(`${match[1]}${fraction}`);
  if (amount === 0n) {
    throw new InvalidPaymentRequestError("price", `${JSON.stringify(text)} must be above 0`);
  }
  return { amount, currency, scale: fraction.length };
}

/** Returns the price of `tokens` tokens at `unitPrice` each, exactly. */
export function multiplyPrice(unitPrice: Price, tokens: bigint): Price {
  return { ...unitPrice, amount: unitPrice.amount * tokens };
}

/** Writes `amount / 10^scale` as a decimal without trailing zeros, such as `1.5` or `20`. */
export function formatDecimal(amount: bigint, scale: number): string {
  const digits = amount.toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return fraction === "" ? whole : `${whole}.${fraction}`;
}

/**
 * Reads a provider's decimal amount in minor units at `scale`. Returns undefined when the text is
 * not a non-negative decimal or has non-zero digits beyond `scale`, because such an amount
 * cannot equal a price of that scale.
 */
export function parseAmountAtScale(text: string, scale: number): bigint | undefined {
  const match = DECIMAL.exec(text);
  if (match === null) return undefined;
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  if (fraction.length > scale) return undefined;
  return BigInt(`${match[1]}${fraction.padEnd(scale, "0")}`);
}
