/** Replies and messages of the Telegram bot in Russian and English. */
import type { TelegramLanguage } from "../db/schema/index.ts";

export interface BalanceFigures {
  free: bigint;
  paid: bigint;
}

/** One line of `/history`: a ledger transaction of the user. */
export interface HistoryLine {
  createdAt: Date;
  /** The ledger transaction kind, such as `usage` or `payment.telegram_stars`. */
  kind: string;
  /** Net change of the user's tokens; negative for a charge. */
  amount: bigint;
  /** Free and paid tokens together right after the transaction. */
  balanceAfter: bigint;
}

/** Returns `2027-03-01 10:00`, the UTC date and minute of `time`. */
function utcMinute(time: Date): string {
  return time.toISOString().slice(0, 16).replace("T", " ");
}

/** Returns the amount with its sign, such as `+5` or `-10`. */
function signed(amount: bigint): string {
  return amount > 0n ? `+${amount}` : String(amount);
}

/** Names a ledger transaction kind in words, or returns the kind itself for an unknown one. */
function kindName(kind: string, names: Record<string, string>): string {
  const base = kind.split(".")[0] as string;
  return names[base] ?? kind;
}

export interface BotTexts {
  /** `/start` without a code, and `/help`. */
  help: (linked: boolean) => string;
  linked: (login: string) => string;
  relinked: (login: string) => string;
  codeMissing: string;
  codeUnknown: string;
  codeExpired: string;
  codeUsed: string;
  chatLinkedElsewhere: string;
  unlinked: string;
  notLinked: string;
  balance: (figures: BalanceFigures) => string;
  /** `/history`: the latest transactions, newest first; `more` when older ones exist. */
  history: (lines: readonly HistoryLine[], more: boolean) => string;
  historyEmpty: string;
  paySupport: (contact: string | undefined) => string;
  buyUsage: (maxTokens: number) => string;
  buyUnavailable: string;
  buyRejected: (reason: string) => string;
  buyFailed: string;
  failed: string;
}

const RU_KIND_NAMES: Record<string, string> = {
  free_allowance: "бесплатные токены месяца",
  faucet: "начисление от администратора",
  usage: "оплата нагрузки Юнита",
  aggregation: "оплата топиков агрегации",
  payment: "покупка токенов",
  refund: "возврат платежа",
};

const EN_KIND_NAMES: Record<string, string> = {
  free_allowance: "monthly free tokens",
  faucet: "grant from the administrator",
  usage: "Unit load charge",
  aggregation: "aggregation topics charge",
  payment: "token purchase",
  refund: "payment refund",
};

const RU: BotTexts = {
  help: (linked) =>
    [
      "Бот узла Pepeunit присылает уведомления о ваших Юнитах и принимает оплату токенов в Telegram Stars.",
      "",
      "/balance — бесплатные и платные токены на балансе",
      "/history — последние 10 операций с токенами",
      "/buy <токены> — купить токены за Stars",
      "/paysupport — как вернуть платёж",
      "/unlink — отвязать этот чат от аккаунта",
      "/help — эта справка",
      "",
      linked
        ? "Этот чат привязан к аккаунту узла."
        : "Этот чат не привязан к аккаунту. Попросите у администратора код привязки и отправьте /link <код>.",
    ].join("\n"),
  linked: (login) =>
    `Чат привязан к аккаунту ${login}. Сюда будут приходить уведомления, в том числе накопившиеся.`,
  relinked: (login) =>
    `Аккаунт ${login} теперь привязан к этому чату вместо прежнего. Уведомления будут приходить сюда.`,
  codeMissing: "Отправьте код привязки: /link <код>. Код выдаёт администратор узла.",
  codeUnknown: "Код привязки не найден. Проверьте его или попросите у администратора новый.",
  codeExpired: "Срок действия кода привязки истёк. Попросите у администратора новый код.",
  codeUsed: "Этот код привязки уже использован. Попросите у администратора новый код.",
  chatLinkedElsewhere:
    "Этот чат уже привязан к другому аккаунту. Отправьте /unlink, а затем код ещё раз.",
  unlinked: "Чат отвязан от аккаунта. Уведомления сюда больше не придут.",
  notLinked:
    "Этот чат не привязан к аккаунту узла. Попросите у администратора код привязки и отправьте /link <код>.",
  balance: ({ free, paid }) =>
    `Баланс: ${free + paid} токенов.\nБесплатные: ${free}\nПлатные: ${paid}\nБесплатные токены тратятся первыми.`,
  history: (lines, more) =>
    [
      "Последние операции, время UTC:",
      ...lines.map(
        (line) =>
          `${utcMinute(line.createdAt)} — ${kindName(line.kind, RU_KIND_NAMES)}: ${signed(line.amount)}, баланс ${line.balanceAfter}`,
      ),
      ...(more
        ? ["", `Показаны последние ${lines.length}. Всю историю покажет администратор узла.`]
        : []),
    ].join("\n"),
  historyEmpty: "Операций с токенами пока нет.",
  paySupport: (contact) =>
    [
      "Чтобы вернуть платёж в Telegram Stars, напишите администратору узла" +
        (contact === undefined ? "." : `: ${contact}.`),
      "Укажите дату и сумму платежа. Администратор вернёт Stars через Telegram, а купленные токены спишутся с баланса.",
      "Потраченные токены вернуть нельзя.",
    ].join("\n"),
  buyUsage: (maxTokens) => `Укажите число токенов от 1 до ${maxTokens}: /buy 100`,
  buyUnavailable: "Оплата в Telegram Stars на этом узле выключена.",
  buyRejected: (reason) => `Счёт не создан: ${reason}`,
  buyFailed: "Не удалось создать счёт. Попробуйте через минуту.",
  failed: "Не получилось выполнить команду. Попробуйте через минуту.",
};

const EN: BotTexts = {
  help: (linked) =>
    [
      "This Pepeunit node bot sends notices about your Units and sells tokens for Telegram Stars.",
      "",
      "/balance — free and paid tokens on your balance",
      "/history — your last 10 token transactions",
      "/buy <tokens> — buy tokens for Stars",
      "/paysupport — how to get a payment refunded",
      "/unlink — unlink this chat from your account",
      "/help — this help",
      "",
      linked
        ? "This chat is linked to a node account."
        : "This chat is not linked to an account. Ask the administrator for a link code and send /link <code>.",
    ].join("\n"),
  linked: (login) =>
    `This chat is linked to the account ${login}. Notices, including earlier ones, will arrive here.`,
  relinked: (login) =>
    `The account ${login} is now linked to this chat instead of the previous one. Notices will arrive here.`,
  codeMissing: "Send the link code: /link <code>. The node's administrator issues it.",
  codeUnknown: "Link code not found. Check it or ask the administrator for a new one.",
  codeExpired: "The link code has expired. Ask the administrator for a new one.",
  codeUsed: "The link code has already been used. Ask the administrator for a new one.",
  chatLinkedElsewhere:
    "This chat is already linked to another account. Send /unlink, then the code again.",
  unlinked: "This chat is unlinked from the account. Notices will no longer arrive here.",
  notLinked:
    "This chat is not linked to a node account. Ask the administrator for a link code and send /link <code>.",
  balance: ({ free, paid }) =>
    `Balance: ${free + paid} tokens.\nFree: ${free}\nPaid: ${paid}\nFree tokens are spent first.`,
  history: (lines, more) =>
    [
      "Latest transactions, times in UTC:",
      ...lines.map(
        (line) =>
          `${utcMinute(line.createdAt)} — ${kindName(line.kind, EN_KIND_NAMES)}: ${signed(line.amount)}, balance ${line.balanceAfter}`,
      ),
      ...(more
        ? [
            "",
            `These are the last ${lines.length}. The node's administrator can show the full history.`,
          ]
        : []),
    ].join("\n"),
  historyEmpty: "No token transactions yet.",
  paySupport: (contact) =>
    [
      "To get a Telegram Stars payment refunded, write to the node's administrator" +
        (contact === undefined ? "." : `: ${contact}.`),
      "Give the date and amount of the payment. The administrator returns the Stars through Telegram, and the bought tokens are taken off your balance.",
      "Tokens already spent cannot be refunded.",
    ].join("\n"),
  buyUsage: (maxTokens) => `Give a number of tokens from 1 to ${maxTokens}: /buy 100`,
  buyUnavailable: "Telegram Stars payments are off on this node.",
  buyRejected: (reason) => `No invoice was created: ${reason}`,
  buyFailed: "Creating the invoice failed. Try again in a minute.",
  failed: "The command failed. Try again in a minute.",
};

/** Returns the bot texts of `language`. */
export function botTexts(language: TelegramLanguage): BotTexts {
  return language === "ru" ? RU : EN;
}

/** Picks the language of Telegram's `language_code`: Russian for `ru*`, English otherwise. */
export function languageOf(languageCode: string | undefined): TelegramLanguage {
  return languageCode?.toLowerCase().startsWith("ru") === true ? "ru" : "en";
}

/** The commands listed in Telegram's menu, per language, for `setMyCommands`. */
export const BOT_COMMANDS: Record<TelegramLanguage, { command: string; description: string }[]> = {
  ru: [
    { command: "balance", description: "Баланс токенов" },
    { command: "history", description: "Последние операции с токенами" },
    { command: "buy", description: "Купить токены за Stars" },
    { command: "paysupport", description: "Возврат платежа" },
    { command: "link", description: "Привязать чат по коду" },
    { command: "unlink", description: "Отвязать чат" },
    { command: "help", description: "Справка" },
  ],
  en: [
    { command: "balance", description: "Token balance" },
    { command: "history", description: "Latest token transactions" },
    { command: "buy", description: "Buy tokens for Stars" },
    { command: "paysupport", description: "Payment refunds" },
    { command: "link", description: "Link this chat with a code" },
    { command: "unlink", description: "Unlink this chat" },
    { command: "help", description: "Help" },
  ],
};
