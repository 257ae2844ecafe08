import type { StarTransaction } from "grammy/types";
import { describe, expect, it } from "vitest";
import { invoiceToTransaction } from "./cryptopay/provider.ts";
import { signCryptoPayBody, verifyCryptoPaySignature } from "./cryptopay/signature.ts";
import { InvalidPaymentRequestError } from "./errors.ts";
import { formatDecimal, multiplyPrice, parseAmountAtScale, parseDecimalPrice } from "./price.ts";
import { toProviderTransaction } from "./telegram-stars.ts";
import { pickLanguage, textsFor } from "./texts.ts";

describe("parseDecimalPrice", () => {
  it("keeps every digit", () => {
    expect(parseDecimalPrice("0.015", "USDT")).toEqual({ amount: 15n, currency: "USDT", scale: 3 });
    expect(parseDecimalPrice("12", "TON")).toEqual({ amount: 12n, currency: "TON", scale: 0 });
    expect(parseDecimalPrice("1.000000000000000001", "ETH").scale).toBe(18);
  });

  it("rejects invalid prices", () => {
    for (const text of ["", "-1", "1.", ".5", "01", "1e3", "0.0000000000000000001"]) {
      expect(() => parseDecimalPrice(text, "USDT"), text).toThrow(InvalidPaymentRequestError);
    }
    expect(() => parseDecimalPrice("0.000", "USDT")).toThrow(/must be above 0/);
  });
});

describe("price arithmetic", () => {
  it("multiplies exactly", () => {
    const price = multiplyPrice(parseDecimalPrice("0.015", "USDT"), 100n);
    expect(price).toEqual({ amount: 1500n, currency: "USDT", scale: 3 });
    expect(formatDecimal(price.amount, price.scale)).toBe("1.5");
  });

  it("formats decimals", () => {
    expect(formatDecimal(20n, 0)).toBe("20");
    expect(formatDecimal(5n, 3)).toBe("0.005");
    expect(formatDecimal(1000n, 3)).toBe("1");
  });

  it("reads amounts at a scale", () => {
    expect(parseAmountAtScale("1.5", 3)).toBe(1500n);
    expect(parseAmountAtScale("1.500000", 3)).toBe(1500n);
    expect(parseAmountAtScale("2", 0)).toBe(2n);
    expect(parseAmountAtScale("1.5001", 3)).toBeUndefined();
    expect(parseAmountAtScale("abc", 3)).toBeUndefined();
  });
});

describe("texts", () => {
  it("picks Russian for ru tags", () => {
    expect(pickLanguage("ru")).toBe("ru");
    expect(pickLanguage("RU-ua")).toBe("ru");
    expect(pickLanguage("en-US")).toBe("en");
    expect(pickLanguage(undefined)).toBe("en");
  });

  it("fits Telegram's title limit", () => {
    for (const language of ["en", "ru"] as const) {
      expect(textsFor(language).invoiceTitle(100_000n).length).toBeLessThanOrEqual(32);
    }
  });
});

describe("Crypto Pay signature", () => {
  const token = "12345:AAexample";
  const body = Buffer.from('{"update_id":1}');

  it("verifies the exact body", () => {
    const signature = signCryptoPayBody(token, body);
    expect(verifyCryptoPaySignature(token, body, signature)).toBe(true);
    expect(verifyCryptoPaySignature(token, body, signature.toUpperCase())).toBe(true);
  });

  it("rejects other bodies and keys", () => {
    const signature = signCryptoPayBody(token, body);
    expect(verifyCryptoPaySignature(token, Buffer.from('{"update_id":2}'), signature)).toBe(false);
    expect(verifyCryptoPaySignature("other", body, signature)).toBe(false);
    expect(verifyCryptoPaySignature(token, body, undefined)).toBe(false);
    expect(verifyCryptoPaySignature(token, body, signature.slice(2))).toBe(false);
  });
});

describe("provider transactions", () => {
  const user = { id: 9, is_bot: false, first_name: "P" };

  it("maps Star transactions", () => {
    const payment: StarTransaction = {
      id: "c1",
      amount: 4,
      date: 0,
      source: { type: "user", transaction_type: "invoice_payment", user, invoice_payload: "o1" },
    };
    const noPayload: StarTransaction = {
      id: "c2",
      amount: 4,
      date: 0,
      source: { type: "user", transaction_type: "invoice_payment", user },
    };
    const refund: StarTransaction = {
      id: "c1",
      amount: 4,
      date: 0,
      receiver: { type: "user", transaction_type: "invoice_payment", user },
    };
    const gift: StarTransaction = {
      id: "g1",
      amount: 4,
      date: 0,
      receiver: { type: "user", transaction_type: "gift_purchase", user },
    };
    const paidMedia: StarTransaction = {
      id: "m1",
      amount: 4,
      date: 0,
      source: { type: "user", transaction_type: "paid_media_payment", user },
    };

    expect(toProviderTransaction(payment)).toMatchObject({
      kind: "payment",
      orderId: "o1",
      amount: "4",
      currency: "XTR",
      payerRef: "9",
    });
    expect(toProviderTransaction(noPayload)?.orderId).toBeNull();
    expect(toProviderTransaction(refund)).toMatchObject({
      kind: "refund",
      providerPaymentId: "c1",
    });
    expect(toProviderTransaction(gift)).toBeNull();
    expect(toProviderTransaction(paidMedia)).toBeNull();
  });

  it("maps a fiat invoice without asset", () => {
    const mapped = invoiceToTransaction({
      invoice_id: 5,
      status: "paid",
      amount: "3",
      bot_invoice_url: "https://t.me/CryptoBot",
    });
    expect(mapped).toMatchObject({ providerPaymentId: "5", currency: "", orderId: null });
  });
});
