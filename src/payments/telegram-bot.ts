/**
 * The Telegram bot that receives payment updates by long polling and hands them to the Stars
 * provider. Only one process of a deployment may poll a bot, so the poller runs under an
 * advisory lock.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Bot } from "grammy";
import type pg from "pg";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import { getNodeLogger } from "../logging.ts";
import type { TelegramStarsProvider } from "../money/payments/index.ts";
import { notifyPaymentCredit, type PaymentCreditListener } from "./resume-after-credit.ts";

const logger = getNodeLogger("money", "payments", "bot");

/** Advisory lock of the one process that polls the bot ("PUTGBT"). */
const TELEGRAM_POLL_LOCK_KEY = 0x505554474254;
/** Seconds between two attempts to take the poll lock or to restart polling after a failure. */
const RETRY_SECONDS = 30;

/**
 * Update types the bot requests: `pre_checkout_query`, and `message` for `successful_payment`
 * and for the user commands of `src/telegram/bot.ts`.
 */
export const PAYMENT_UPDATES = ["message", "pre_checkout_query"] as const;

/** Creates the bot with payment handlers. `apiRoot` has no trailing slash. */
export function createPaymentBot(options: {
  token: string;
  apiRoot: string;
  provider: TelegramStarsProvider;
  /** Called after a `successful_payment` update credited tokens; the node resumes Units. */
  onCredit?: PaymentCreditListener;
}): Bot {
  const bot = new Bot(options.token, { client: { apiRoot: options.apiRoot } });
  bot.on(["pre_checkout_query", "message:successful_payment"], async (ctx, next) => {
    const result = await options.provider.handleNotification(ctx.update);
    if (options.onCredit !== undefined) await notifyPaymentCredit(result, options.onCredit);
    // A payment is a message from the payer, so later handlers see it too: it clears a block
    // that a failed notice set on the payer's linked chat.
    if (ctx.message !== undefined) await next();
  });
  bot.catch((error) => {
    logger.error("Handling Telegram update {updateId} failed: {error}", {
      updateId: error.ctx.update.update_id,
      error: error.error,
    });
  });
  return bot;
}

/**
 * Polls the bot until `signal` aborts, in the one process that holds the advisory lock. A
 * failed poll is logged and retried after 30 seconds.
 */
export async function runPaymentBot(options: {
  bot: Bot;
  pool: pg.Pool;
  signal: AbortSignal;
  /** Runs once the lock is held, before polling, such as registering the command menu. */
  beforePolling?: () => Promise<void>;
}): Promise<void> {
  const { bot, signal } = options;
  const lock = new AdvisoryLockHolder(options.pool, TELEGRAM_POLL_LOCK_KEY);
  // bot.stop() confirms the last updates with one more getUpdates, which may fail at shutdown.
  const stop = () =>
    void bot.stop().catch((error: unknown) => {
      logger.warn("Stopping the Telegram poller failed: {error}", { error });
    });
  signal.addEventListener("abort", stop, { once: true });
  while (!signal.aborted) {
    try {
      if ((await lock.hold()) && !signal.aborted) {
        await options.beforePolling?.().catch((error: unknown) => {
          logger.error("Preparing the Telegram bot before polling failed: {error}", { error });
        });
        logger.info("Polling Telegram for payment updates");
        await bot.start({ allowed_updates: [...PAYMENT_UPDATES] });
      }
    } catch (error) {
      logger.error("Polling Telegram for payment updates failed: {error}", { error });
    }
    await sleep(RETRY_SECONDS * 1000, undefined, { signal }).catch(() => undefined);
  }
  signal.removeEventListener("abort", stop);
  await lock.release();
  logger.info("Stopped polling Telegram for payment updates");
}
