/**
 * Admin routes of Telegram linking: issue a link code for a user, list and remove links, and list
 * a user's notices with their delivery state.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { and, desc, eq, isNull, lt } from "drizzle-orm";
import { Api } from "grammy";
import type { MiddlewareHandler } from "hono";
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import {
  TELEGRAM_LANGUAGES,
  telegramNoticeDeliveries,
  userNotices,
  users,
} from "../db/schema/index.ts";
import {
  adminRoute,
  errorResponses,
  invalidCursorError,
  jsonBody,
  jsonResponse,
  loadPage,
} from "../http/api/routing.ts";
import { IdParamsSchema, PageQuerySchema, pageOf } from "../http/api/schemas.ts";
import { HttpError } from "../http/errors.ts";
import { getNodeLogger } from "../logging.ts";
import { trimSlash } from "../payments/providers.ts";
import {
  DEFAULT_LINK_CODE_TTL_SECONDS,
  findUserLink,
  issueLinkCode,
  type LinkListItem,
  listLinks,
  MAX_LINK_CODE_TTL_SECONDS,
  removeUserLink,
  UserNotFoundError,
} from "./links.ts";

const logger = getNodeLogger("telegram", "routes");

const TimestampSchema = z.string().openapi({ format: "date-time" });

const LinkCodeRequestSchema = z
  .strictObject({
    userId: z.guid("expected the UUID of a user"),
    ttlSeconds: z
      .number()
      .int("expected a whole number of seconds")
      .min(60, "expected at least 60 seconds")
      .max(
        MAX_LINK_CODE_TTL_SECONDS,
        `expected at most ${MAX_LINK_CODE_TTL_SECONDS} seconds (30 days)`,
      )
      .default(DEFAULT_LINK_CODE_TTL_SECONDS)
      .openapi({ description: "Lifetime of the code in seconds; 86400 (24 hours) by default" }),
  })
  .openapi("TelegramLinkCodeRequest");

const LinkCodeSchema = z
  .object({
    userId: z.string(),
    code: z.string().openapi({ description: "The one-time code; the node keeps only its hash" }),
    expiresAt: TimestampSchema,
    command: z.string().openapi({ example: "/link Xb3...", description: "What the user sends" }),
    deepLink: z.string().nullable().openapi({
      description:
        "https://t.me/<bot>?start=<code>, which opens the bot and sends the code; null when the bot's username is unknown",
    }),
  })
  .openapi("TelegramLinkCode");

const LinkSchema = z
  .object({
    userId: z.string(),
    login: z.string(),
    chatId: z.number().int(),
    telegramUserId: z.number().int(),
    language: z.enum(TELEGRAM_LANGUAGES),
    linkedAt: TimestampSchema,
    blockedAt: TimestampSchema.nullable().openapi({
      description: "When Telegram rejected a notice with 403; notices wait until the user writes",
    }),
    blockedReason: z.string().nullable(),
    pendingNotices: z.number().int(),
  })
  .openapi("TelegramLink");

const UserIdParamsSchema = z.object({
  userId: z
    .guid("expected a UUID such as 0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44")
    .openapi({ param: { name: "userId", in: "path" } }),
});

const NoticeQuerySchema = PageQuerySchema.extend({
  undelivered: z
    .enum(["true", "false"], { error: "expected true or false" })
    .transform((value) => value === "true")
    .optional()
    .openapi({ type: "string", enum: ["true", "false"], description: "Only undelivered notices" }),
});

const NoticeSchema = z
  .object({
    id: z.number().int(),
    kind: z.string(),
    key: z.string(),
    textRu: z.string(),
    textEn: z.string(),
    metadata: z.record(z.string(), z.unknown()),
    createdAt: TimestampSchema,
    deliveredAt: TimestampSchema.nullable(),
    attempts: z.number().int().openapi({ description: "Telegram send attempts so far" }),
    nextAttemptAt: TimestampSchema.nullable(),
    lastError: z.string().nullable(),
  })
  .openapi("UserNotice");

const NoticePageSchema = pageOf(NoticeSchema, "UserNoticePage").extend({
  telegram: LinkSchema.omit({ login: true, pendingNotices: true })
    .nullable()
    .openapi({ description: "The user's linked chat; null when the user has none" }),
});

function linkJson(link: LinkListItem) {
  return {
    userId: link.userId,
    login: link.login,
    chatId: link.chatId,
    telegramUserId: link.telegramUserId,
    language: link.language,
    linkedAt: link.linkedAt.toISOString(),
    blockedAt: link.blockedAt?.toISOString() ?? null,
    blockedReason: link.blockedReason,
    pendingNotices: link.pendingNotices,
  };
}

/**
 * Returns a function that reads the bot's username once with `getMe`, for deep links. It
 * returns undefined without a bot token, and after a failed call, which the next call repeats.
 */
export function botUsernameLookup(config: Config): () => Promise<string | undefined> {
  const token = config.payments.telegramToken;
  let username: string | undefined;
  return async () => {
    if (token === undefined) return undefined;
    if (username !== undefined) return username;
    try {
      const api = new Api(token, {
        apiRoot: trimSlash(config.payments.telegramApiRoot),
        timeoutSeconds: 10,
      });
      username = (await api.getMe()).username;
    } catch (error) {
      logger.warn("Reading the Telegram bot's username failed, so no deep link: {error}", {
        error,
      });
    }
    return username;
  };
}

/** Registers the Telegram routes on an API app (mount point `/api/v1`). */
export function registerTelegramRoutes(
  app: OpenAPIHono,
  options: {
    db: Database;
    admin: MiddlewareHandler;
    /** Reads the bot's username for deep links, such as {@link botUsernameLookup}. */
    botUsername: () => Promise<string | undefined>;
  },
): void {
  const { db, admin } = options;

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/telegram/link-codes",
      tags: ["Telegram"],
      summary: "Issue a one-time code that links a Telegram chat to a user",
      description:
        "The user sends `/link <code>` to the bot, or opens the deep link. The code works once " +
        "and until `expiresAt`, and a new code for the same user cancels the unused earlier ones.",
      request: { body: jsonBody(LinkCodeRequestSchema) },
      responses: {
        201: jsonResponse(LinkCodeSchema, "The code; it is shown only in this response"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const createdBy = (c.req.header("x-changed-by") ?? "").trim().slice(0, 100) || "admin";
      let issued: Awaited<ReturnType<typeof issueLinkCode>>;
      try {
        issued = await issueLinkCode(db, {
          userId: body.userId,
          ttlSeconds: body.ttlSeconds,
          createdBy,
        });
      } catch (error) {
        if (error instanceof UserNotFoundError) {
          throw new HttpError(404, "user_not_found", error.message);
        }
        throw error;
      }
      const username = await options.botUsername();
      return c.json(
        {
          userId: issued.userId,
          code: issued.code,
          expiresAt: issued.expiresAt.toISOString(),
          command: `/link ${issued.code}`,
          deepLink: username === undefined ? null : `https://t.me/${username}?start=${issued.code}`,
        },
        201,
      );
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/telegram/links",
      tags: ["Telegram"],
      summary: "List linked Telegram chats by user id",
      request: { query: PageQuerySchema },
      responses: {
        200: jsonResponse(pageOf(LinkSchema, "TelegramLinkPage"), "One page of links"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = await loadPage(c, c.req.valid("query"), {
        load: (page) => listLinks(db, page),
        keyOf: (link) => link.userId,
        toItem: linkJson,
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "delete",
      path: "/telegram/links/{userId}",
      tags: ["Telegram"],
      summary: "Unlink the user's Telegram chat",
      request: { params: UserIdParamsSchema },
      responses: {
        204: { description: "Unlinked; notices wait undelivered until the user links again" },
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { userId } = c.req.valid("param");
      if (!(await removeUserLink(db, userId))) {
        throw new HttpError(
          404,
          "telegram_link_not_found",
          `User ${userId} has no linked Telegram chat`,
        );
      }
      return c.body(null, 204);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/users/{id}/notices",
      tags: ["Telegram"],
      summary: "List a user's notices, newest first, with their Telegram delivery state",
      description:
        "Notices of a user without a linked chat stay undelivered here; linking a chat delivers them, oldest first.",
      request: { params: IdParamsSchema, query: NoticeQuerySchema },
      responses: {
        200: jsonResponse(NoticePageSchema, "One page of notices and the user's linked chat"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const query = c.req.valid("query");
      const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
      if (user === undefined) throw new HttpError(404, "user_not_found", `User ${id} not found`);

      const page = await loadPage(c, query, {
        load: async ({ limit, after }) => {
          const conditions = [eq(userNotices.userId, id)];
          if (query.undelivered === true) conditions.push(isNull(userNotices.deliveredAt));
          if (after !== undefined) {
            const afterId = Number(after);
            if (!Number.isSafeInteger(afterId)) {
              throw invalidCursorError();
            }
            conditions.push(lt(userNotices.id, afterId));
          }
          return db
            .select({ notice: userNotices, delivery: telegramNoticeDeliveries })
            .from(userNotices)
            .leftJoin(
              telegramNoticeDeliveries,
              eq(telegramNoticeDeliveries.noticeId, userNotices.id),
            )
            .where(and(...conditions))
            .orderBy(desc(userNotices.id))
            .limit(limit);
        },
        keyOf: (row) => String(row.notice.id),
        toItem: ({ notice, delivery }) => ({
          id: notice.id,
          kind: notice.kind,
          key: notice.key,
          textRu: notice.textRu,
          textEn: notice.textEn,
          metadata: notice.metadata,
          createdAt: notice.createdAt.toISOString(),
          deliveredAt: notice.deliveredAt?.toISOString() ?? null,
          attempts: delivery?.attempts ?? 0,
          nextAttemptAt: delivery?.nextAttemptAt?.toISOString() ?? null,
          lastError: delivery?.lastError ?? null,
        }),
      });
      const link = await findUserLink(db, id);
      const telegram =
        link === undefined
          ? null
          : {
              userId: link.userId,
              chatId: link.chatId,
              telegramUserId: link.telegramUserId,
              language: link.language,
              linkedAt: link.linkedAt.toISOString(),
              blockedAt: link.blockedAt?.toISOString() ?? null,
              blockedReason: link.blockedReason,
            };
      return c.json({ ...page, telegram }, 200);
    },
  );
}
