import { sql } from "drizzle-orm";
import { bigint, check, index, integer, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { userNotices } from "./billing.ts";
import { createdAt, sqlList } from "./common.ts";
import { users } from "./users.ts";

/**
 * Telegram: the chats linked to node users, the one-time codes that link them, and the delivery
 * state of user notices sent over Telegram. `src/telegram/` writes these tables, and
 * docs/telegram.md describes linking and delivery.
 */

/** Languages of bot replies and notices: Russian for a Telegram `language_code` of `ru*`. */
export const TELEGRAM_LANGUAGES = ["ru", "en"] as const;
export type TelegramLanguage = (typeof TELEGRAM_LANGUAGES)[number];

/** The private chat linked to a node user: at most one per user and one user per chat. */
export const telegramLinks = pgTable(
  "telegram_links",
  {
    userId: uuid("user_id")
      .primaryKey()
      .references(() => users.id, { onDelete: "cascade" }),
    chatId: bigint("chat_id", { mode: "number" }).notNull().unique("telegram_links_chat_unique"),
    telegramUserId: bigint("telegram_user_id", { mode: "number" }).notNull(),
    language: text("language", { enum: TELEGRAM_LANGUAGES }).notNull(),
    linkedAt: timestamp("linked_at", { withTimezone: true }).notNull().defaultNow(),
    /** When Telegram rejected a notice with 403. Null while the chat receives messages. */
    blockedAt: timestamp("blocked_at", { withTimezone: true }),
    /** Telegram's description of that 403, such as "Forbidden: bot was blocked by the user". */
    blockedReason: text("blocked_reason"),
  },
  (table) => [
    check(
      "telegram_links_language_check",
      sql`${table.language} in (${sqlList(TELEGRAM_LANGUAGES)})`,
    ),
  ],
);

/**
 * A one-time code that links the chat which sends it to `user_id`. Only the SHA-256 digest of
 * the code is stored. A used or expired code keeps its row, so the bot can tell why it fails.
 */
export const telegramLinkCodes = pgTable(
  "telegram_link_codes",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    /** Hex SHA-256 of the code. */
    codeHash: text("code_hash").notNull().unique("telegram_link_codes_hash_unique"),
    createdAt: createdAt(),
    /** The admin API caller that issued the code. */
    createdBy: text("created_by").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    /** When a chat redeemed the code, or when a newer code for the same user replaced it. */
    usedAt: timestamp("used_at", { withTimezone: true }),
    /** The chat that redeemed the code. Null for a replaced code. */
    usedChatId: bigint("used_chat_id", { mode: "number" }),
  },
  (table) => [index("telegram_link_codes_user_idx").on(table.userId)],
);

/**
 * The Telegram delivery state of one user notice: failed attempts and when to try again. A
 * notice without a row has never been tried. `user_notices.delivered_at` marks delivery.
 */
export const telegramNoticeDeliveries = pgTable(
  "telegram_notice_deliveries",
  {
    noticeId: bigint("notice_id", { mode: "number" })
      .primaryKey()
      .references(() => userNotices.id, { onDelete: "cascade" }),
    attempts: integer("attempts").notNull().default(0),
    lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true }),
    /** The sender skips the notice, and the user's later notices, until this time. */
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }),
    lastError: text("last_error"),
    /** The chat and message id that Telegram returned for the delivered message. */
    chatId: bigint("chat_id", { mode: "number" }),
    messageId: bigint("message_id", { mode: "number" }),
  },
  (table) => [index("telegram_notice_deliveries_next_idx").on(table.nextAttemptAt)],
);

export type TelegramLink = typeof telegramLinks.$inferSelect;
export type TelegramLinkCode = typeof telegramLinkCodes.$inferSelect;
export type TelegramNoticeDelivery = typeof telegramNoticeDeliveries.$inferSelect;
