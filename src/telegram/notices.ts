/**
 * Delivery of user notices (`user_notices`) to linked Telegram chats.
 *
 * Each user's notices go out oldest first, one database transaction per notice. The transaction
 * locks the user's link row with `FOR UPDATE SKIP LOCKED`, sends the notice, and sets
 * `delivered_at` only after Telegram accepted the message. So two senders never send the same
 * notice: the second one skips a user whose link the first one holds, and after the first
 * commits it finds the notice delivered. A failed send leaves the notice undelivered and sets
 * the time of the next attempt.
 *
 * NOTE: a process that dies after Telegram accepted a message and before its commit sends that
 * notice again after restart. Telegram has no idempotency key for `sendMessage`, so this one
 * duplicate cannot be ruled out.
 */

import { and, asc, eq, isNull, sql } from "drizzle-orm";
import type { Api } from "grammy";
import { GrammyError, HttpError } from "grammy";
import type { Database, Transaction } from "../db/client.ts";
import {
  type TelegramLink,
  type TelegramNoticeDelivery,
  telegramLinks,
  telegramNoticeDeliveries,
  type UserNoticeRow,
  userNotices,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("telegram", "notices");

/** Delay after the first failed attempt. Each further failure doubles it. */
export const RETRY_BASE_SECONDS = 30;
/** Maximum delay between two attempts at one notice. */
export const RETRY_MAX_SECONDS = 3600;
/** Users served in one round. The job runs again at once after a full round. */
const USERS_PER_ROUND = 100;
/** Notices sent to one user in one round, so one user's backlog does not hold up the others. */
const NOTICES_PER_USER = 20;

/** Returns the delay in seconds before attempt `attempts + 1`, after `attempts` failures. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(RETRY_BASE_SECONDS * 2 ** Math.max(attempts - 1, 0), RETRY_MAX_SECONDS);
}

export interface NoticeRound {
  delivered: number;
  /** Failed sends that are retried later, 429 responses included. */
  failed: number;
  /** Chats found blocked (403) in this round. */
  blocked: number;
  /** Users skipped because another sender held their link. */
  skipped: number;
  /** Telegram responded with 429, so the round stopped early. */
  rateLimited: boolean;
  /** Due notices may remain, because the round hit one of its limits. */
  morePending: boolean;
}

type NoticeOutcome =
  | "delivered"
  | "failed"
  | "blocked"
  | "rate_limited"
  /** Another sender holds the user's link, or the link is gone or blocked. */
  | "skipped"
  /** No undelivered notice is due. */
  | "idle";

/**
 * Sends the due notices of linked chats that have not blocked the bot, in one round. `now`
 * decides which retries are due, and tests pass a later time to skip the wait.
 */
export async function deliverPendingNotices(options: {
  db: Database;
  api: Api;
  now?: Date;
}): Promise<NoticeRound> {
  const { db, api } = options;
  const now = options.now ?? new Date();
  const round: NoticeRound = {
    delivered: 0,
    failed: 0,
    blocked: 0,
    skipped: 0,
    rateLimited: false,
    morePending: false,
  };
  const userIds = await usersWithDueNotices(db, now);
  round.morePending = userIds.length === USERS_PER_ROUND;

  users: for (const userId of userIds) {
    for (let sent = 0; ; sent += 1) {
      if (sent === NOTICES_PER_USER) {
        round.morePending = true;
        break;
      }
      const outcome = await deliverNextNotice(db, api, userId, now);
      if (outcome === "delivered") {
        round.delivered += 1;
        continue;
      }
      if (outcome === "failed") round.failed += 1;
      if (outcome === "blocked") round.blocked += 1;
      if (outcome === "skipped") round.skipped += 1;
      if (outcome === "rate_limited") {
        round.failed += 1;
        round.rateLimited = true;
        break users;
      }
      break;
    }
  }
  if (round.delivered + round.failed + round.blocked > 0) {
    logger.info(
      "Telegram notice round: {delivered} delivered, {failed} failed, {blocked} chats blocked",
      { ...round },
    );
  }
  return round;
}

/**
 * Returns users whose oldest undelivered notice is due, who have a link that is not blocked.
 * A user whose oldest notice waits for a retry is left out, because later notices wait behind it.
 */
async function usersWithDueNotices(db: Database, now: Date): Promise<string[]> {
  const result = await db.execute<{ user_id: string }>(sql`
    select n.user_id
    from ${userNotices} n
    join ${telegramLinks} l on l.user_id = n.user_id and l.blocked_at is null
    left join ${telegramNoticeDeliveries} d on d.notice_id = n.id
    where n.delivered_at is null
      and not exists (
        select 1 from ${userNotices} o
        where o.user_id = n.user_id and o.delivered_at is null
          and (o.created_at, o.id) < (n.created_at, n.id)
      )
      and (d.next_attempt_at is null or d.next_attempt_at <= ${now})
    order by n.created_at, n.id
    limit ${USERS_PER_ROUND}`);
  return result.rows.map((row) => row.user_id);
}

async function deliverNextNotice(
  db: Database,
  api: Api,
  userId: string,
  now: Date,
): Promise<NoticeOutcome> {
  return db.transaction(async (tx) => {
    const [link] = await tx
      .select()
      .from(telegramLinks)
      .where(and(eq(telegramLinks.userId, userId), isNull(telegramLinks.blockedAt)))
      .for("update", { skipLocked: true });
    if (link === undefined) return "skipped";
    const [notice] = await tx
      .select()
      .from(userNotices)
      .where(and(eq(userNotices.userId, userId), isNull(userNotices.deliveredAt)))
      .orderBy(asc(userNotices.createdAt), asc(userNotices.id))
      .limit(1)
      .for("update");
    if (notice === undefined) return "idle";
    const [delivery] = await tx
      .select()
      .from(telegramNoticeDeliveries)
      .where(eq(telegramNoticeDeliveries.noticeId, notice.id));
    if (delivery?.nextAttemptAt != null && delivery.nextAttemptAt.getTime() > now.getTime()) {
      return "idle";
    }
    return sendNotice(tx, api, link, notice, delivery, now);
  });
}

async function sendNotice(
  tx: Transaction,
  api: Api,
  link: TelegramLink,
  notice: UserNoticeRow,
  delivery: TelegramNoticeDelivery | undefined,
  now: Date,
): Promise<NoticeOutcome> {
  const text = link.language === "ru" ? notice.textRu : notice.textEn;
  const attempts = (delivery?.attempts ?? 0) + 1;
  const ids = { noticeId: notice.id, userId: link.userId, chatId: link.chatId };
  try {
    const message = await api.sendMessage(link.chatId, text);
    await tx.update(userNotices).set({ deliveredAt: now }).where(eq(userNotices.id, notice.id));
    await saveDelivery(tx, {
      noticeId: notice.id,
      attempts,
      lastAttemptAt: now,
      nextAttemptAt: null,
      lastError: null,
      chatId: link.chatId,
      messageId: message.message_id,
    });
    return "delivered";
  } catch (error) {
    const description = describeError(error);
    const failure = {
      noticeId: notice.id,
      attempts,
      lastAttemptAt: now,
      lastError: description,
      chatId: null,
      messageId: null,
    };

    if (error instanceof GrammyError && error.error_code === 403) {
      // The user blocked the bot or deleted the account. Retrying is pointless until the
      // user writes to the bot again, which clears the block (recordChatActivity).
      await tx
        .update(telegramLinks)
        .set({ blockedAt: now, blockedReason: error.description })
        .where(eq(telegramLinks.userId, link.userId));
      await saveDelivery(tx, { ...failure, nextAttemptAt: null });
      logger.warn(
        "Telegram chat {chatId} of user {userId} rejected notice {noticeId}: {error}; notices to it stop until the user writes to the bot",
        { ...ids, error: description },
      );
      return "blocked";
    }

    if (error instanceof GrammyError && error.error_code === 429) {
      const retryAfter = error.parameters.retry_after ?? RETRY_BASE_SECONDS;
      const nextAttemptAt = new Date(now.getTime() + retryAfter * 1000);
      await saveDelivery(tx, { ...failure, nextAttemptAt });
      logger.warn(
        "Telegram rate-limited notice {noticeId} to chat {chatId} of user {userId}; retrying after {retryAfter} s",
        { ...ids, retryAfter },
      );
      return "rate_limited";
    }

    const delaySeconds = retryDelaySeconds(attempts);
    await saveDelivery(tx, {
      ...failure,
      nextAttemptAt: new Date(now.getTime() + delaySeconds * 1000),
    });
    logger.error(
      "Sending notice {noticeId} to Telegram chat {chatId} of user {userId} failed (attempt {attempts}): {error}; retrying in {delaySeconds} s",
      { ...ids, attempts, delaySeconds, error: description },
    );
    return "failed";
  }
}

function describeError(error: unknown): string {
  if (error instanceof GrammyError) return `${error.error_code} ${error.description}`;
  if (error instanceof HttpError) return `network error: ${String(error.error)}`;
  return String(error);
}

async function saveDelivery(
  tx: Transaction,
  values: typeof telegramNoticeDeliveries.$inferInsert,
): Promise<void> {
  const { noticeId: _noticeId, ...update } = values;
  await tx
    .insert(telegramNoticeDeliveries)
    .values(values)
    .onConflictDoUpdate({ target: telegramNoticeDeliveries.noticeId, set: update });
}
