import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { Api } from "grammy";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { FakeTelegramBotApi } from "../../test/fakes/telegram-bot-api.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { createDatabase, createPool, type Database } from "../db/client.ts";
import {
  type TelegramLanguage,
  telegramLinks,
  telegramNoticeDeliveries,
  userNotices,
} from "../db/schema/index.ts";
import { createUser } from "../payments/test-support.ts";
import { issueLinkCode, recordChatActivity, redeemLinkCode } from "./links.ts";
import { deliverPendingNotices, RETRY_BASE_SECONDS, retryDelaySeconds } from "./notices.ts";

const TOKEN = "424242:TEST-notices_bot";

let database: TestDatabase;
let db: Database;
let fake: FakeTelegramBotApi;
let api: Api;
let nextChatId = 500_000;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "telegram_notices");
  db = database.db;
  fake = new FakeTelegramBotApi({ token: TOKEN });
  await fake.start();
  api = new Api(TOKEN, { apiRoot: fake.apiRoot });
});

afterAll(async () => {
  await fake.stop();
  await database.drop();
});

beforeEach(async () => {
  fake.failures.clear();
  fake.blockedChats.clear();
  fake.sendMessageDelayMs = 0;
  // Each test starts with every earlier notice delivered, so rounds only see its own notices.
  await db.update(userNotices).set({ deliveredAt: new Date() });
});

/** Creates a user whose chat is linked through a redeemed code, and returns both ids. */
async function linkedUser(language: TelegramLanguage = "en") {
  const userId = await createUser(db);
  const chatId = nextChatId++;
  const { code } = await issueLinkCode(db, { userId, ttlSeconds: 3600, createdBy: "test" });
  const outcome = await redeemLinkCode(db, code, { chatId, telegramUserId: chatId, language });
  expect(outcome.status).toBe("linked");
  return { userId, chatId };
}

/** Stores a notice as billing does and returns its id. */
async function addNotice(userId: string, label: string, createdAt = new Date()): Promise<number> {
  const [row] = await db
    .insert(userNotices)
    .values({
      userId,
      key: `test:${randomUUID()}`,
      kind: "unit_stopped",
      textRu: `ru ${label}`,
      textEn: `en ${label}`,
      createdAt,
    })
    .returning({ id: userNotices.id });
  return (row as { id: number }).id;
}

async function noticeRow(id: number) {
  const [notice] = await db.select().from(userNotices).where(eq(userNotices.id, id));
  const [delivery] = await db
    .select()
    .from(telegramNoticeDeliveries)
    .where(eq(telegramNoticeDeliveries.noticeId, id));
  return { notice, delivery };
}

function secondsAfter(time: Date, seconds: number): Date {
  return new Date(time.getTime() + seconds * 1000);
}

describe("notice sender", () => {
  it("sends in the user's language once", async () => {
    const russian = await linkedUser("ru");
    const english = await linkedUser("en");
    const ruNotice = await addNotice(russian.userId, "stop-1");
    const enNotice = await addNotice(english.userId, "stop-2");

    const round = await deliverPendingNotices({ db, api });
    expect(round.delivered).toBe(2);
    expect(fake.textsTo(russian.chatId)).toEqual(["ru stop-1"]);
    expect(fake.textsTo(english.chatId)).toEqual(["en stop-2"]);
    expect((await noticeRow(ruNotice)).notice?.deliveredAt).toBeInstanceOf(Date);
    expect((await noticeRow(enNotice)).delivery?.messageId).toBeTypeOf("number");

    const again = await deliverPendingNotices({ db, api });
    expect(again.delivered).toBe(0);
    expect(fake.textsTo(russian.chatId)).toHaveLength(1);
  });

  it("sends a user's notices oldest first", async () => {
    const { userId, chatId } = await linkedUser();
    const now = Date.now();
    await addNotice(userId, "third", new Date(now - 1_000));
    await addNotice(userId, "first", new Date(now - 3_000));
    await addNotice(userId, "second", new Date(now - 2_000));

    await deliverPendingNotices({ db, api });
    expect(fake.textsTo(chatId)).toEqual(["en first", "en second", "en third"]);
  });

  it("delivers once with two senders racing", async () => {
    const users = await Promise.all([linkedUser(), linkedUser("ru"), linkedUser()]);
    const ids: number[] = [];
    for (const [index, user] of users.entries()) {
      for (let n = 0; n < 3; n += 1) ids.push(await addNotice(user.userId, `race-${index}-${n}`));
    }
    // A second pool and client play a second worker process.
    const otherPool = createPool({ url: database.url, max: 4, applicationName: "test-sender-2" });
    const otherApi = new Api(TOKEN, { apiRoot: fake.apiRoot });
    fake.sendMessageDelayMs = 50;
    try {
      const rounds = await Promise.all([
        deliverPendingNotices({ db, api }),
        deliverPendingNotices({ db: createDatabase(otherPool), api: otherApi }),
        deliverPendingNotices({ db, api }),
      ]);
      // A sender that skipped a user may leave notices for a later round.
      const final = await deliverPendingNotices({ db, api });
      const delivered = rounds.reduce((sum, round) => sum + round.delivered, final.delivered);
      expect(delivered).toBe(9);
    } finally {
      await otherPool.end();
    }

    for (const [index, user] of users.entries()) {
      const prefix = index === 1 ? "ru" : "en";
      expect(fake.textsTo(user.chatId)).toEqual([
        `${prefix} race-${index}-0`,
        `${prefix} race-${index}-1`,
        `${prefix} race-${index}-2`,
      ]);
    }
    for (const id of ids) {
      expect((await noticeRow(id)).notice?.deliveredAt).toBeInstanceOf(Date);
    }
  });

  it("retries after a server error with backoff", async () => {
    const { userId, chatId } = await linkedUser();
    const first = await addNotice(userId, "retry-1", new Date(Date.now() - 1_000));
    const second = await addNotice(userId, "retry-2");
    fake.failures.set("sendMessage", { code: 500, description: "Internal Server Error" });
    const start = new Date();

    const failed = await deliverPendingNotices({ db, api, now: start });
    expect(failed.failed).toBe(1);
    const afterFailure = await noticeRow(first);
    expect(afterFailure.notice?.deliveredAt).toBeNull();
    expect(afterFailure.delivery?.attempts).toBe(1);
    expect(afterFailure.delivery?.lastError).toBe("500 Internal Server Error");
    expect(afterFailure.delivery?.nextAttemptAt?.getTime()).toBe(
      secondsAfter(start, RETRY_BASE_SECONDS).getTime(),
    );

    // Still failing at the first retry doubles the delay.
    const secondFailure = await deliverPendingNotices({
      db,
      api,
      now: secondsAfter(start, RETRY_BASE_SECONDS),
    });
    expect(secondFailure.failed).toBe(1);
    expect((await noticeRow(first)).delivery?.nextAttemptAt?.getTime()).toBe(
      secondsAfter(start, RETRY_BASE_SECONDS + retryDelaySeconds(2)).getTime(),
    );

    fake.failures.delete("sendMessage");
    const early = await deliverPendingNotices({
      db,
      api,
      now: secondsAfter(start, RETRY_BASE_SECONDS + 1),
    });
    expect(early.delivered).toBe(0);
    expect(fake.textsTo(chatId)).toEqual([]);

    const due = await deliverPendingNotices({
      db,
      api,
      now: secondsAfter(start, RETRY_BASE_SECONDS + retryDelaySeconds(2)),
    });
    expect(due.delivered).toBe(2);
    expect(fake.textsTo(chatId)).toEqual(["en retry-1", "en retry-2"]);
    expect((await noticeRow(first)).delivery?.attempts).toBe(3);
    expect((await noticeRow(second)).delivery?.attempts).toBe(1);
  });

  it("honours retry_after of a 429", async () => {
    const { userId, chatId } = await linkedUser();
    const id = await addNotice(userId, "flood");
    fake.failures.set("sendMessage", {
      code: 429,
      description: "Too Many Requests: retry after 120",
      retryAfter: 120,
    });
    const start = new Date();

    const limited = await deliverPendingNotices({ db, api, now: start });
    expect(limited.rateLimited).toBe(true);
    expect((await noticeRow(id)).delivery?.nextAttemptAt?.getTime()).toBe(
      secondsAfter(start, 120).getTime(),
    );

    fake.failures.delete("sendMessage");
    const early = await deliverPendingNotices({ db, api, now: secondsAfter(start, 119) });
    expect(early.delivered).toBe(0);
    const due = await deliverPendingNotices({ db, api, now: secondsAfter(start, 120) });
    expect(due.delivered).toBe(1);
    expect(fake.textsTo(chatId)).toEqual(["en flood"]);
  });

  it("stops at a blocked chat until the user writes", async () => {
    const { userId, chatId } = await linkedUser();
    const id = await addNotice(userId, "blocked");
    fake.blockedChats.add(chatId);
    const start = new Date();

    const round = await deliverPendingNotices({ db, api, now: start });
    expect(round.blocked).toBe(1);
    const [link] = await db.select().from(telegramLinks).where(eq(telegramLinks.userId, userId));
    expect(link?.blockedAt).toBeInstanceOf(Date);
    expect(link?.blockedReason).toBe("Forbidden: bot was blocked by the user");

    // No retry however long it waits, and no further attempt is counted.
    const later = await deliverPendingNotices({ db, api, now: secondsAfter(start, 86_400) });
    expect(later.blocked + later.failed + later.delivered).toBe(0);
    expect((await noticeRow(id)).delivery?.attempts).toBe(1);

    fake.blockedChats.delete(chatId);
    await recordChatActivity(db, chatId, "ru");
    const resumed = await deliverPendingNotices({ db, api, now: secondsAfter(start, 60) });
    expect(resumed.delivered).toBe(1);
    expect(fake.textsTo(chatId)).toEqual(["ru blocked"]);
  });

  it("keeps notices of unlinked users", async () => {
    const userId = await createUser(db);
    const id = await addNotice(userId, "backlog");

    const round = await deliverPendingNotices({ db, api });
    expect(round.delivered).toBe(0);
    expect((await noticeRow(id)).notice?.deliveredAt).toBeNull();
    expect((await noticeRow(id)).delivery).toBeUndefined();

    const chatId = nextChatId++;
    const { code } = await issueLinkCode(db, { userId, ttlSeconds: 3600, createdBy: "test" });
    await redeemLinkCode(db, code, { chatId, telegramUserId: chatId, language: "en" });
    const linked = await deliverPendingNotices({ db, api });
    expect(linked.delivered).toBe(1);
    expect(fake.textsTo(chatId)).toEqual(["en backlog"]);
  });

  it("caps the retry delay at one hour", () => {
    expect(retryDelaySeconds(1)).toBe(30);
    expect(retryDelaySeconds(2)).toBe(60);
    expect(retryDelaySeconds(8)).toBe(3600);
    expect(retryDelaySeconds(50)).toBe(3600);
  });
});
