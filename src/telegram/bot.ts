import type { Api, Bot, Context } from "grammy";
import type { Database } from "../db/client.ts";
import type { TelegramLanguage } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { readUserBalances, readUserLedger } from "../money/ledger/index.ts";
import { InvalidPaymentRequestError, type TelegramStarsProvider } from "../money/payments/index.ts";
import {
  findChatLink,
  type RedeemOutcome,
  recordChatActivity,
  redeemLinkCode,
  unlinkChat,
} from "./links.ts";
import { BOT_COMMANDS, type BotTexts, botTexts, languageOf } from "./texts.ts";

const logger = getNodeLogger("telegram", "bot");

/** Transactions that `/history` lists. */
export const HISTORY_COMMAND_LIMIT = 10;

export interface UserCommandOptions {
  db: Database;
  /** Stars provider for `/buy`. Without it, `/buy` replies that Stars payments are off. */
  provider?: TelegramStarsProvider | undefined;
  /** Largest `/buy` order, `PU_NODE_PAYMENT_MAX_TOKENS`. */
  maxTokensPerOrder: number;
  /** Whom to ask for a refund (`PU_NODE_SUPPORT_CONTACT`), which `/paysupport` shows. */
  supportContact: string | undefined;
}

/** Registers the menu of commands in Russian and in English (the default) with `setMyCommands`. */
export async function setBotCommands(api: Api): Promise<void> {
  await api.setMyCommands(BOT_COMMANDS.en);
  await api.setMyCommands(BOT_COMMANDS.ru, { language_code: "ru" });
}

/** Telegram's `/start` parameter and `/link` argument: the text after the command. */
function argumentOf(ctx: Context): string {
  return typeof ctx.match === "string" ? ctx.match.trim() : "";
}

function redeemAnswer(texts: BotTexts, outcome: RedeemOutcome): string {
  switch (outcome.status) {
    case "linked":
      return texts.linked(outcome.login);
    case "relinked":
      return texts.relinked(outcome.login);
    case "unknown_code":
      return texts.codeUnknown;
    case "expired_code":
      return texts.codeExpired;
    case "used_code":
      return texts.codeUsed;
    case "chat_linked_elsewhere":
      return texts.chatLinkedElsewhere;
  }
}

/**
 * Adds the user commands to `bot`. Only private chats are served, because a link belongs to
 * one person. Every message of a linked chat also clears a block set by a failed notice.
 */
export function registerUserCommands(bot: Bot, options: UserCommandOptions): void {
  const { db } = options;
  const privateChats = bot.chatType("private");

  privateChats.on("message", async (ctx, next) => {
    const languageCode = ctx.from.language_code;
    try {
      const link = await findChatLink(db, ctx.chat.id);
      if (link !== undefined) {
        await recordChatActivity(
          db,
          ctx.chat.id,
          languageCode === undefined ? link.language : languageOf(languageCode),
        );
      }
    } catch (error) {
      logger.error("Recording activity of Telegram chat {chatId} failed: {error}", {
        chatId: ctx.chat.id,
        error,
      });
    }
    await next();
  });

  /** Returns the language of a reply: the app's language, else the one stored with the link. */
  async function languageFor(ctx: Context & { chat: { id: number } }): Promise<TelegramLanguage> {
    const languageCode = ctx.from?.language_code;
    if (languageCode !== undefined) return languageOf(languageCode);
    return (await findChatLink(db, ctx.chat.id))?.language ?? "en";
  }

  /** Registers a command handler. A failure is logged, and the user gets a "try again" reply. */
  function command(
    name: string,
    handle: (ctx: Context & { chat: { id: number } }, texts: BotTexts) => Promise<string>,
  ): void {
    privateChats.command(name, async (ctx) => {
      const texts = botTexts(await languageFor(ctx));
      let answer: string;
      try {
        answer = await handle(ctx, texts);
      } catch (error) {
        logger.error("Telegram command /{command} of chat {chatId} failed: {error}", {
          command: name,
          chatId: ctx.chat.id,
          error,
        });
        answer = texts.failed;
      }
      if (answer !== "") await ctx.reply(answer);
    });
  }

  async function link(ctx: Context & { chat: { id: number } }, texts: BotTexts, code: string) {
    const outcome = await redeemLinkCode(db, code, {
      chatId: ctx.chat.id,
      telegramUserId: ctx.from?.id ?? ctx.chat.id,
      language: await languageFor(ctx),
    });
    return redeemAnswer(texts, outcome);
  }

  command("start", async (ctx, texts) => {
    const code = argumentOf(ctx);
    if (code !== "") return link(ctx, texts, code);
    return texts.help((await findChatLink(db, ctx.chat.id)) !== undefined);
  });

  command("link", async (ctx, texts) => {
    const code = argumentOf(ctx);
    if (code === "") return texts.codeMissing;
    return link(ctx, texts, code);
  });

  command("unlink", async (ctx, texts) => {
    const userId = await unlinkChat(db, ctx.chat.id);
    return userId === undefined ? texts.notLinked : texts.unlinked;
  });

  command("help", async (ctx, texts) =>
    texts.help((await findChatLink(db, ctx.chat.id)) !== undefined),
  );

  command("balance", async (ctx, texts) => {
    const chatLink = await findChatLink(db, ctx.chat.id);
    if (chatLink === undefined) return texts.notLinked;
    return texts.balance(await readUserBalances(db, chatLink.userId));
  });

  command("history", async (ctx, texts) => {
    const chatLink = await findChatLink(db, ctx.chat.id);
    if (chatLink === undefined) return texts.notLinked;
    const ledger = await readUserLedger(db, chatLink.userId, { limit: HISTORY_COMMAND_LIMIT });
    if (ledger.items.length === 0) return texts.historyEmpty;
    return texts.history(ledger.items, ledger.nextAfter !== null);
  });

  // Telegram requires bots that sell for Stars to reply to /paysupport with how to get help.
  command("paysupport", async (_ctx, texts) => texts.paySupport(options.supportContact));

  command("buy", async (ctx, texts) => {
    const provider = options.provider;
    if (provider === undefined) return texts.buyUnavailable;
    const chatLink = await findChatLink(db, ctx.chat.id);
    if (chatLink === undefined) return texts.notLinked;
    const argument = argumentOf(ctx);
    const tokens = /^[0-9]{1,15}$/.test(argument) ? Number(argument) : Number.NaN;
    if (!(tokens >= 1 && tokens <= options.maxTokensPerOrder)) {
      return texts.buyUsage(options.maxTokensPerOrder);
    }
    try {
      // The provider sends the invoice into this chat, so the invoice is the reply.
      await provider.createInvoice({
        userId: chatLink.userId,
        tokens: BigInt(tokens),
        language: await languageFor(ctx),
        telegramChatId: ctx.chat.id,
      });
      return "";
    } catch (error) {
      if (error instanceof InvalidPaymentRequestError) {
        return texts.buyRejected(error.message);
      }
      logger.error("Creating a Stars invoice for user {userId} in chat {chatId} failed: {error}", {
        userId: chatLink.userId,
        chatId: ctx.chat.id,
        error,
      });
      return texts.buyFailed;
    }
  });
}
