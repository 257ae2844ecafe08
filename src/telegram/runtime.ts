/** Starts the worker's notice sender, which delivers user notices to linked Telegram chats. */
import type { Api } from "grammy";
import type pg from "pg";
import type { Config } from "../config.ts";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import type { Database } from "../db/client.ts";
import { runPeriodically } from "../jobs/loop.ts";
import { deliverPendingNotices } from "./notices.ts";

/**
 * Advisory lock of the one worker that sends notices ("PUTGNT"). Row locks already keep two
 * senders from sending one notice twice, so the lock only saves the other workers the queries.
 */
const NOTICE_SENDER_LOCK_KEY = 0x505554474e54;

/** Returns the notice sender job: a round every `PU_NODE_TELEGRAM_NOTICE_INTERVAL_SECONDS`. */
export function startTelegramNoticeSender(options: {
  config: Config;
  pool: pg.Pool;
  db: Database;
  api: Api;
  signal: AbortSignal;
}): Promise<void> {
  const { db, api, signal } = options;
  const lock = new AdvisoryLockHolder(options.pool, NOTICE_SENDER_LOCK_KEY);
  signal.addEventListener("abort", () => void lock.release(), { once: true });
  return runPeriodically(
    {
      name: "send-telegram-notices",
      intervalMs: options.config.telegram.noticeIntervalSeconds * 1000,
      run: async () => {
        if (!(await lock.hold())) return false;
        const round = await deliverPendingNotices({ db, api });
        return round.morePending && !round.rateLimited;
      },
    },
    signal,
  );
}
