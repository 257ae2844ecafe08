/**
 * Starts the payment jobs of a worker: the Telegram bot poller with the user commands, the
 * Telegram notice sender, and the daily reconciliation.
 */
import { Api } from "grammy";
import type pg from "pg";
import { createUnitAccess } from "../billing/unit-access.ts";
import type { Config } from "../config.ts";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import type { Database } from "../db/client.ts";
import { runPeriodically } from "../jobs/loop.ts";
import { registerUserCommands, setBotCommands } from "../telegram/bot.ts";
import { startTelegramNoticeSender } from "../telegram/runtime.ts";
import { createPaymentProviders, trimSlash } from "./providers.ts";
import { reconcileAndResume, resumeUnitsOnCredit } from "./resume-after-credit.ts";
import { createPaymentBot, runPaymentBot } from "./telegram-bot.ts";

/** Advisory lock of the one worker that reconciles payments ("PURCNC"). */
const RECONCILE_LOCK_KEY = 0x505552434e43;
/** Seconds after which the notice sender gives up one `sendMessage` call and retries later. */
const NOTICE_SEND_TIMEOUT_SECONDS = 30;

/** Returns the background jobs of payments; none when no provider is configured. */
export function startPaymentJobs(options: {
  config: Config;
  pool: pg.Pool;
  db: Database;
  signal: AbortSignal;
}): Promise<void>[] {
  const { config, db, signal } = options;
  const providers = createPaymentProviders(config, db);
  const jobs: Promise<void>[] = [];
  const onCredit = resumeUnitsOnCredit({ db, access: createUnitAccess(config) });
  const { telegramToken } = config.payments;
  if (providers.telegramStars !== undefined && telegramToken !== undefined) {
    const bot = createPaymentBot({
      token: telegramToken,
      apiRoot: trimSlash(config.payments.telegramApiRoot),
      provider: providers.telegramStars,
      onCredit,
    });
    registerUserCommands(bot, {
      db,
      provider: providers.telegramStars,
      maxTokensPerOrder: config.payments.maxTokensPerOrder,
      supportContact: config.telegram.supportContact,
    });
    jobs.push(
      runPaymentBot({
        bot,
        pool: options.pool,
        signal,
        beforePolling: () => setBotCommands(bot.api),
      }),
      startTelegramNoticeSender({
        config,
        pool: options.pool,
        db,
        // A notice's row locks are held while it is sent, so a hung request must end soon.
        api: new Api(telegramToken, {
          apiRoot: trimSlash(config.payments.telegramApiRoot),
          timeoutSeconds: NOTICE_SEND_TIMEOUT_SECONDS,
        }),
        signal,
      }),
    );
  }

  const configured = [providers.telegramStars, providers.cryptoPay].filter(
    (provider) => provider !== undefined,
  );
  if (configured.length > 0) {
    const lock = new AdvisoryLockHolder(options.pool, RECONCILE_LOCK_KEY);
    signal.addEventListener("abort", () => void lock.release(), { once: true });
    jobs.push(
      runPeriodically(
        {
          name: "reconcile-payments",
          intervalMs: config.payments.reconcileIntervalSeconds * 1000,
          run: async () => {
            if (!(await lock.hold())) return false;
            for (const provider of configured) await reconcileAndResume(db, provider, onCredit);
            return false;
          },
        },
        signal,
      ),
    );
  }
  return jobs;
}
