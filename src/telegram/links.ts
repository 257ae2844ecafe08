/**
 * Linking Telegram chats to node users with one-time codes. The administrator issues a code for a
 * user, the user sends it to the bot, and the chat that sent it becomes the user's linked chat.
 */
import { createHash, randomBytes } from "node:crypto";
import { and, asc, eq, gt, isNull, sql } from "drizzle-orm";
import { isUniqueViolation } from "../catalogue/validation.ts";
import type { Database, DatabaseLike } from "../db/client.ts";
import {
  type TelegramLanguage,
  type TelegramLink,
  telegramLinkCodes,
  telegramLinks,
  telegramNoticeDeliveries,
  userNotices,
  users,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("telegram", "links");

/** Lifetime of a link code unless the administrator gives another one. */
export const DEFAULT_LINK_CODE_TTL_SECONDS = 24 * 3600;
/** Maximum lifetime of a link code: 30 days. */
export const MAX_LINK_CODE_TTL_SECONDS = 30 * 24 * 3600;
/**
 * Codes are 20 random bytes in base64url: 27 characters, within the 64 characters of
 * `[A-Za-z0-9_-]` that Telegram allows in a `/start` deep-link parameter.
 */
const CODE_BYTES = 20;
export const LINK_CODE_PATTERN = /^[A-Za-z0-9_-]{27}$/;

export class UserNotFoundError extends Error {
  constructor(userId: string) {
    super(`User ${userId} not found`);
    this.name = "UserNotFoundError";
  }
}

export interface IssuedLinkCode {
  code: string;
  userId: string;
  expiresAt: Date;
}

function hashCode(code: string): string {
  return createHash("sha256").update(code, "utf8").digest("hex");
}

/**
 * Issues a one-time link code for `userId`. Only its hash is stored, so the returned code is the
 * only copy. Unused earlier codes of the user stop working, so only the latest code links.
 */
export async function issueLinkCode(
  db: Database,
  request: { userId: string; ttlSeconds: number; createdBy: string; now?: Date },
): Promise<IssuedLinkCode> {
  const now = request.now ?? new Date();
  const code = randomBytes(CODE_BYTES).toString("base64url");
  const expiresAt = new Date(now.getTime() + request.ttlSeconds * 1000);
  await db.transaction(async (tx) => {
    const [user] = await tx
      .select({ id: users.id })
      .from(users)
      .where(eq(users.id, request.userId));
    if (user === undefined) throw new UserNotFoundError(request.userId);
    await tx
      .update(telegramLinkCodes)
      .set({ usedAt: now })
      .where(and(eq(telegramLinkCodes.userId, request.userId), isNull(telegramLinkCodes.usedAt)));
    await tx.insert(telegramLinkCodes).values({
      userId: request.userId,
      codeHash: hashCode(code),
      createdBy: request.createdBy,
      createdAt: now,
      expiresAt,
    });
  });
  logger.info("Issued a Telegram link code for user {userId}, valid until {expiresAt}", {
    userId: request.userId,
    expiresAt: expiresAt.toISOString(),
  });
  return { code, userId: request.userId, expiresAt };
}

/** The chat that sends a code, as the update describes it. */
export interface ChatIdentity {
  chatId: number;
  telegramUserId: number;
  language: TelegramLanguage;
}

export type RedeemOutcome =
  | { status: "linked"; userId: string; login: string }
  /** The user was linked to another chat, which this one replaces. */
  | { status: "relinked"; userId: string; login: string; previousChatId: number }
  | { status: "unknown_code" }
  | { status: "expired_code" }
  | { status: "used_code" }
  /** The chat is linked to another user. The code stays unused. */
  | { status: "chat_linked_elsewhere" };

/**
 * Redeems a link code for the chat that sent it. The code row is locked while the link is
 * written, so a code links at most one chat even when two chats send it at once.
 */
export async function redeemLinkCode(
  db: Database,
  code: string,
  chat: ChatIdentity,
  now: Date = new Date(),
): Promise<RedeemOutcome> {
  if (!LINK_CODE_PATTERN.test(code)) return { status: "unknown_code" };
  const outcome = await linkInTransaction(db, code, chat, now).catch((error: unknown) => {
    // Two codes of different users sent from one chat at once: the second insert hits the
    // unique chat id, exactly as if the first link had been there before.
    if (isUniqueViolation(error, "telegram_links_chat_unique")) {
      return { status: "chat_linked_elsewhere" } as const;
    }
    throw error;
  });
  if (outcome.status === "linked" || outcome.status === "relinked") {
    logger.info("Linked Telegram chat {chatId} to user {userId} ({status})", {
      chatId: chat.chatId,
      userId: outcome.userId,
      status: outcome.status,
    });
  } else {
    logger.info("Telegram chat {chatId} sent a link code that failed: {status}", {
      chatId: chat.chatId,
      status: outcome.status,
    });
  }
  return outcome;
}

function linkInTransaction(
  db: Database,
  code: string,
  chat: ChatIdentity,
  now: Date,
): Promise<RedeemOutcome> {
  return db.transaction(async (tx): Promise<RedeemOutcome> => {
    const [row] = await tx
      .select()
      .from(telegramLinkCodes)
      .where(eq(telegramLinkCodes.codeHash, hashCode(code)))
      .for("update");
    if (row === undefined) return { status: "unknown_code" };
    if (row.usedAt !== null) return { status: "used_code" };
    if (row.expiresAt.getTime() <= now.getTime()) return { status: "expired_code" };

    // Locks the chat's link, if any, so a concurrent /unlink or code waits for this one.
    const [chatLink] = await tx
      .select({ userId: telegramLinks.userId })
      .from(telegramLinks)
      .where(eq(telegramLinks.chatId, chat.chatId))
      .for("update");
    if (chatLink !== undefined && chatLink.userId !== row.userId) {
      return { status: "chat_linked_elsewhere" };
    }
    const [previous] = await tx
      .select({ chatId: telegramLinks.chatId })
      .from(telegramLinks)
      .where(eq(telegramLinks.userId, row.userId))
      .for("update");
    const [user] = await tx
      .select({ login: users.login })
      .from(users)
      .where(eq(users.id, row.userId));

    await tx
      .update(telegramLinkCodes)
      .set({ usedAt: now, usedChatId: chat.chatId })
      .where(eq(telegramLinkCodes.id, row.id));
    const link = {
      chatId: chat.chatId,
      telegramUserId: chat.telegramUserId,
      language: chat.language,
      linkedAt: now,
      blockedAt: null,
      blockedReason: null,
    };
    await tx
      .insert(telegramLinks)
      .values({ userId: row.userId, ...link })
      .onConflictDoUpdate({ target: telegramLinks.userId, set: link });
    await clearNoticeBackoff(tx, row.userId);

    const login = user?.login ?? row.userId;
    if (previous !== undefined && previous.chatId !== chat.chatId) {
      return { status: "relinked", userId: row.userId, login, previousChatId: previous.chatId };
    }
    return { status: "linked", userId: row.userId, login };
  });
}

/**
 * Lets the sender try the user's pending notices at once: after linking, and when a chat that
 * blocked the bot writes to it again.
 */
async function clearNoticeBackoff(db: DatabaseLike, userId: string): Promise<void> {
  await db
    .update(telegramNoticeDeliveries)
    .set({ nextAttemptAt: null })
    .where(
      sql`${telegramNoticeDeliveries.noticeId} in (select ${userNotices.id} from ${userNotices} where ${userNotices.userId} = ${userId} and ${userNotices.deliveredAt} is null)`,
    );
}

/** Removes the link of the chat and returns the user it was linked to, if any. */
export async function unlinkChat(db: Database, chatId: number): Promise<string | undefined> {
  const [removed] = await db
    .delete(telegramLinks)
    .where(eq(telegramLinks.chatId, chatId))
    .returning({ userId: telegramLinks.userId });
  if (removed !== undefined) {
    logger.info("Unlinked Telegram chat {chatId} from user {userId}", {
      chatId,
      userId: removed.userId,
    });
  }
  return removed?.userId;
}

/** Removes the user's link and returns whether there was one. */
export async function removeUserLink(db: Database, userId: string): Promise<boolean> {
  const removed = await db
    .delete(telegramLinks)
    .where(eq(telegramLinks.userId, userId))
    .returning({ chatId: telegramLinks.chatId });
  if (removed.length > 0) {
    logger.info("Removed the Telegram link of user {userId}", { userId });
  }
  return removed.length > 0;
}

/** Returns the link of a chat with its user's login, or undefined for an unlinked chat. */
export async function findChatLink(
  db: DatabaseLike,
  chatId: number,
): Promise<(TelegramLink & { login: string }) | undefined> {
  const [row] = await db
    .select({ link: telegramLinks, login: users.login })
    .from(telegramLinks)
    .innerJoin(users, eq(users.id, telegramLinks.userId))
    .where(eq(telegramLinks.chatId, chatId));
  return row === undefined ? undefined : { ...row.link, login: row.login };
}

/** Returns the link of a user, or undefined. */
export async function findUserLink(
  db: DatabaseLike,
  userId: string,
): Promise<TelegramLink | undefined> {
  const [link] = await db.select().from(telegramLinks).where(eq(telegramLinks.userId, userId));
  return link;
}

/**
 * Records that a linked chat wrote to the bot: clears a block set by a 403, so notices flow
 * again, and follows a change of the Telegram app's language.
 */
export async function recordChatActivity(
  db: Database,
  chatId: number,
  language: TelegramLanguage,
): Promise<void> {
  const [link] = await db
    .select({
      userId: telegramLinks.userId,
      blockedAt: telegramLinks.blockedAt,
      language: telegramLinks.language,
    })
    .from(telegramLinks)
    .where(eq(telegramLinks.chatId, chatId));
  if (link === undefined) return;
  if (link.blockedAt === null && link.language === language) return;
  await db.transaction(async (tx) => {
    await tx
      .update(telegramLinks)
      .set({ blockedAt: null, blockedReason: null, language })
      .where(eq(telegramLinks.userId, link.userId));
    if (link.blockedAt !== null) await clearNoticeBackoff(tx, link.userId);
  });
  if (link.blockedAt !== null) {
    logger.info("Telegram chat {chatId} of user {userId} wrote again; notices resume", {
      chatId,
      userId: link.userId,
    });
  }
}

export interface LinkListItem extends TelegramLink {
  login: string;
  /** Notices of the user not delivered yet. */
  pendingNotices: number;
}

/** Lists links by user id after `after`, for the admin API's pages. */
export async function listLinks(
  db: DatabaseLike,
  page: { limit: number; after: string | undefined },
): Promise<LinkListItem[]> {
  const pending = sql<number>`(select count(*)::int from ${userNotices} where ${userNotices.userId} = ${telegramLinks.userId} and ${userNotices.deliveredAt} is null)`;
  const rows = await db
    .select({ link: telegramLinks, login: users.login, pendingNotices: pending })
    .from(telegramLinks)
    .innerJoin(users, eq(users.id, telegramLinks.userId))
    .where(page.after === undefined ? undefined : gt(telegramLinks.userId, page.after))
    .orderBy(asc(telegramLinks.userId))
    .limit(page.limit);
  return rows.map((row) => ({ ...row.link, login: row.login, pendingNotices: row.pendingNotices }));
}
