/** User-facing texts of invoices and pre-checkout responses, in English and Russian. */

export const LANGUAGES = ["en", "ru"] as const;
export type Language = (typeof LANGUAGES)[number];

/** Reasons to reject a Telegram pre-checkout query, each with a message to the payer. */
export type PreCheckoutRejection =
  | "order_not_found"
  | "currency_mismatch"
  | "amount_mismatch"
  | "expired"
  | "already_paid"
  | "not_payable"
  | "wrong_payer"
  | "busy";

interface Texts {
  /** Invoice title; Telegram allows 1 to 32 characters. */
  invoiceTitle(tokens: bigint): string;
  /** Invoice description; Telegram allows 1 to 255 characters. */
  invoiceDescription(tokens: bigint, nodeName: string): string;
  priceLabel: string;
  preCheckout: Record<PreCheckoutRejection, string>;
}

const TEXTS: Record<Language, Texts> = {
  en: {
    invoiceTitle: (tokens) => `${tokens} tokens`,
    invoiceDescription: (tokens, nodeName) =>
      `${tokens} paid tokens for the Units of your account on ${nodeName}.`,
    priceLabel: "Tokens",
    preCheckout: {
      order_not_found: "This invoice is unknown. Request a new invoice.",
      currency_mismatch: "This invoice has the wrong currency. Request a new invoice.",
      amount_mismatch: "The amount does not match the order. Request a new invoice.",
      expired: "This invoice has expired. Request a new invoice.",
      already_paid: "This invoice is already paid.",
      not_payable: "This invoice can no longer be paid. Request a new invoice.",
      wrong_payer: "This invoice was issued to another user.",
      busy: "The order is being processed. Try again in a minute.",
    },
  },
  ru: {
    invoiceTitle: (tokens) => `Токены: ${tokens}`,
    invoiceDescription: (tokens, nodeName) =>
      `${tokens} платных токенов для Unit вашего аккаунта на ${nodeName}.`,
    priceLabel: "Токены",
    preCheckout: {
      order_not_found: "Этот счёт не найден. Запросите новый счёт.",
      currency_mismatch: "У этого счёта неверная валюта. Запросите новый счёт.",
      amount_mismatch: "Сумма не совпадает с заказом. Запросите новый счёт.",
      expired: "Срок действия счёта истёк. Запросите новый счёт.",
      already_paid: "Этот счёт уже оплачен.",
      not_payable: "Этот счёт больше нельзя оплатить. Запросите новый счёт.",
      wrong_payer: "Этот счёт выставлен другому пользователю.",
      busy: "Заказ обрабатывается. Повторите попытку через минуту.",
    },
  },
};

/** Returns the texts of `language`. */
export function textsFor(language: Language): Texts {
  return TEXTS[language];
}

/** Picks the language of an IETF tag such as Telegram's `language_code`: Russian for `ru*`. */
export function pickLanguage(tag: string | undefined): Language {
  return tag?.toLowerCase().startsWith("ru") ? "ru" : "en";
}
