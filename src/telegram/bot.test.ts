import { randomUUID } from "node:crypto";
import { OpenAPIHono } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { Api, type Bot } from "grammy";
import type { User } from "grammy/types";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { FakeTelegramBotApi } from "../../test/fakes/telegram-bot-api.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { loadConfig } from "../config.ts";
import type { Database } from "../db/client.ts";
import { telegramLinks, userNotices } from "../db/schema/index.ts";
import { handleApiError } from "../http/api/failures.ts";
import { requireAdminToken } from "../http/auth.ts";
import { grantFaucetTokens } from "../money/billing/index.ts";
import { spendTokens } from "../money/ledger/index.ts";
import { TelegramStarsProvider } from "../money/payments/index.ts";
import { createPaymentBot, runPaymentBot } from "../payments/telegram-bot.ts";
import { createUser, orderState, paidBalance } from "../payments/test-support.ts";
import { HISTORY_COMMAND_LIMIT, registerUserCommands, setBotCommands } from "./bot.ts";
import { issueLinkCode, redeemLinkCode } from "./links.ts";
import { deliverPendingNotices } from "./notices.ts";
import { botUsernameLookup, registerTelegramRoutes } from "./routes.ts";
import { BOT_COMMANDS, botTexts } from "./texts.ts";

const TOKEN = "515151:TEST-commands_bot";
const ADMIN = "c".repeat(64);
const SUPPORT = "@node_admin";

let database: TestDatabase;
let db: Database;
let fake: FakeTelegramBotApi;
let bot: Bot;
let app: OpenAPIHono;
const polling = new AbortController();
let running: Promise<void>;
let nextTelegramId = 900_000;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "telegram_bot");
  db = database.db;
  fake = new FakeTelegramBotApi({ token: TOKEN });
  await fake.start();
  const provider = new TelegramStarsProvider({
    db,
    api: new Api(TOKEN, { apiRoot: fake.apiRoot }),
    starsPerToken: 2n,
    maxTokens: 1000n,
    orderTtlSeconds: 3600,
    nodeName: "Test node",
  });
  bot = createPaymentBot({ token: TOKEN, apiRoot: fake.apiRoot, provider });
  registerUserCommands(bot, { db, provider, maxTokensPerOrder: 1000, supportContact: SUPPORT });
  running = runPaymentBot({
    bot,
    pool: database.pool,
    signal: polling.signal,
    beforePolling: () => setBotCommands(bot.api),
  });

  const config = loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_TELEGRAM_TOKEN: TOKEN,
    PU_NODE_TELEGRAM_API_ROOT: fake.apiRoot,
  });
  app = new OpenAPIHono();
  app.onError(handleApiError);
  registerTelegramRoutes(app, {
    db,
    admin: requireAdminToken(ADMIN),
    botUsername: botUsernameLookup(config),
  });
});

afterAll(async () => {
  polling.abort();
  await running;
  await fake.stop();
  await database.drop();
});

function request(method: string, path: string, body?: unknown) {
  return app.request(path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function newTelegramUser(languageCode = "en"): Pick<User, "id" | "language_code"> {
  return { id: nextTelegramId++, language_code: languageCode };
}

/** Sends `text` as `user` and returns the bot's reply. */
async function ask(user: Pick<User, "id"> & Partial<User>, text: string): Promise<string> {
  const before = fake.textsTo(user.id).length;
  fake.sendText(user, text);
  await vi.waitFor(() => expect(fake.textsTo(user.id).length).toBeGreaterThan(before), {
    timeout: 5_000,
  });
  return fake.textsTo(user.id)[before] as string;
}

async function issueCode(userId: string): Promise<{ code: string; deepLink: string | null }> {
  const response = await request("POST", "/telegram/link-codes", { userId });
  expect(response.status).toBe(201);
  return (await response.json()) as { code: string; deepLink: string | null };
}

async function linkOf(userId: string) {
  const [link] = await db.select().from(telegramLinks).where(eq(telegramLinks.userId, userId));
  return link;
}

describe("link codes", () => {
  it("links a chat through the deep link", async () => {
    const userId = await createUser(db);
    const { code, deepLink } = await issueCode(userId);
    expect(code).toMatch(/^[A-Za-z0-9_-]{27}$/);
    expect(deepLink).toBe(`https://t.me/fake_bot?start=${code}`);

    const user = newTelegramUser("ru-RU");
    const answer = await ask(user, `/start ${code}`);
    expect(answer).toContain("Чат привязан к аккаунту");
    const link = await linkOf(userId);
    expect(link?.chatId).toBe(user.id);
    expect(link?.telegramUserId).toBe(user.id);
    expect(link?.language).toBe("ru");
  });

  it("rejects an unknown code", async () => {
    const user = newTelegramUser();
    expect(await ask(user, "/link AAAAAAAAAAAAAAAAAAAAAAAAAAA")).toBe(botTexts("en").codeUnknown);
    expect(await ask(user, "/link short")).toBe(botTexts("en").codeUnknown);
    expect(await ask(user, "/link")).toBe(botTexts("en").codeMissing);
  });

  it("rejects an expired code", async () => {
    const userId = await createUser(db);
    const { code } = await issueLinkCode(db, {
      userId,
      ttlSeconds: 3600,
      createdBy: "test",
      now: new Date(Date.now() - 2 * 3_600_000),
    });
    expect(await ask(newTelegramUser("ru"), `/link ${code}`)).toBe(botTexts("ru").codeExpired);
    expect(await linkOf(userId)).toBeUndefined();
  });

  it("rejects a used code", async () => {
    const userId = await createUser(db);
    const { code } = await issueCode(userId);
    const owner = newTelegramUser();
    expect(await ask(owner, `/link ${code}`)).toContain("This chat is linked");

    const other = newTelegramUser();
    expect(await ask(other, `/link ${code}`)).toBe(botTexts("en").codeUsed);
    expect((await linkOf(userId))?.chatId).toBe(owner.id);
  });

  it("cancels older codes of the user", async () => {
    const userId = await createUser(db);
    const older = await issueCode(userId);
    const newer = await issueCode(userId);
    const user = newTelegramUser();
    expect(await ask(user, `/link ${older.code}`)).toBe(botTexts("en").codeUsed);
    expect(await ask(user, `/link ${newer.code}`)).toContain("This chat is linked");
  });

  it("rejects a chat linked to another user", async () => {
    const first = await createUser(db);
    const second = await createUser(db);
    const user = newTelegramUser();
    await ask(user, `/link ${(await issueCode(first)).code}`);

    const { code } = await issueCode(second);
    expect(await ask(user, `/link ${code}`)).toBe(botTexts("en").chatLinkedElsewhere);
    expect(await linkOf(second)).toBeUndefined();

    // The code was not used up, so it links after /unlink.
    expect(await ask(user, "/unlink")).toBe(botTexts("en").unlinked);
    expect(await linkOf(first)).toBeUndefined();
    expect(await ask(user, `/link ${code}`)).toContain("This chat is linked");
    expect((await linkOf(second))?.chatId).toBe(user.id);
  });

  it("links once under concurrent codes", async () => {
    const first = await createUser(db);
    const second = await createUser(db);
    const chatId = nextTelegramId++;
    const chat = { chatId, telegramUserId: chatId, language: "en" as const };
    const codes = await Promise.all([first, second].map((userId) => issueCode(userId)));
    const outcomes = await Promise.all(codes.map(({ code }) => redeemLinkCode(db, code, chat)));
    expect(outcomes.map((outcome) => outcome.status).sort()).toEqual([
      "chat_linked_elsewhere",
      "linked",
    ]);

    const shared = await issueCode(await createUser(db));
    const chats = [nextTelegramId++, nextTelegramId++];
    const redeemed = await Promise.all(
      chats.map((id) =>
        redeemLinkCode(db, shared.code, { chatId: id, telegramUserId: id, language: "en" }),
      ),
    );
    expect(redeemed.map((outcome) => outcome.status).sort()).toEqual(["linked", "used_code"]);
  });

  it("relinks a user to a new chat", async () => {
    const userId = await createUser(db);
    const oldChat = newTelegramUser();
    await ask(oldChat, `/link ${(await issueCode(userId)).code}`);

    const newChat = newTelegramUser();
    const answer = await ask(newChat, `/start ${(await issueCode(userId)).code}`);
    expect(answer).toContain("is now linked to this chat instead of the previous one");
    expect((await linkOf(userId))?.chatId).toBe(newChat.id);
    expect(await ask(oldChat, "/balance")).toBe(botTexts("en").notLinked);
  });
});

describe("admin routes", () => {
  it("rejects an unknown user and a bad lifetime", async () => {
    const unknown = await request("POST", "/telegram/link-codes", { userId: randomUUID() });
    expect(unknown.status).toBe(404);
    const short = await request("POST", "/telegram/link-codes", {
      userId: await createUser(db),
      ttlSeconds: 5,
    });
    expect(short.status).toBe(400);
    expect(JSON.stringify(await short.json())).toContain("expected at least 60 seconds");
  });

  it("lists notices and delivers the backlog on link", async () => {
    const userId = await createUser(db);
    await db.insert(userNotices).values({
      userId,
      key: `test:${randomUUID()}`,
      kind: "unit_stopped",
      textRu: "Юнит остановлен",
      textEn: "Unit stopped",
    });

    const before = await request("GET", `/users/${userId}/notices?undelivered=true`);
    expect(before.status).toBe(200);
    const page = (await before.json()) as {
      items: { deliveredAt: string | null; attempts: number }[];
      telegram: unknown;
    };
    expect(page.items).toHaveLength(1);
    expect(page.items[0]?.deliveredAt).toBeNull();
    expect(page.telegram).toBeNull();

    const user = newTelegramUser();
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    await deliverPendingNotices({ db, api: new Api(TOKEN, { apiRoot: fake.apiRoot }) });
    expect(fake.textsTo(user.id).at(-1)).toBe("Unit stopped");

    const after = await request("GET", `/users/${userId}/notices?undelivered=true`);
    expect(((await after.json()) as { items: unknown[] }).items).toHaveLength(0);
    const all = await request("GET", `/users/${userId}/notices`);
    const delivered = (await all.json()) as {
      items: { deliveredAt: string | null; attempts: number }[];
      telegram: { chatId: number };
    };
    expect(delivered.items[0]?.deliveredAt).not.toBeNull();
    expect(delivered.items[0]?.attempts).toBe(1);
    expect(delivered.telegram.chatId).toBe(user.id);

    const missing = await request("GET", `/users/${randomUUID()}/notices`);
    expect(missing.status).toBe(404);
  });

  it("lists and removes links", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser();
    await ask(user, `/link ${(await issueCode(userId)).code}`);

    const list = await request("GET", "/telegram/links?limit=100");
    const items = ((await list.json()) as { items: { userId: string; chatId: number }[] }).items;
    expect(items.find((item) => item.userId === userId)?.chatId).toBe(user.id);

    expect((await request("DELETE", `/telegram/links/${userId}`)).status).toBe(204);
    expect((await request("DELETE", `/telegram/links/${userId}`)).status).toBe(404);
    expect(await ask(user, "/balance")).toBe(botTexts("en").notLinked);
  });
});

describe("bot commands", () => {
  it("registers the menu in both languages", async () => {
    await vi.waitFor(() => expect(fake.commands.size).toBe(2), { timeout: 5_000 });
    expect(fake.commands.get("")).toEqual(BOT_COMMANDS.en);
    expect(fake.commands.get("ru")).toEqual(BOT_COMMANDS.ru);
  });

  it("answers /balance with free and paid tokens", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser("ru");
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    expect(await ask(user, "/balance")).toBe(botTexts("ru").balance({ free: 0n, paid: 0n }));

    await grantFaucetTokens(db, {
      callKey: randomUUID(),
      userIds: [userId],
      tokens: 40n,
      reason: "test grant",
    });
    const answer = await ask(user, "/balance");
    expect(answer).toBe(botTexts("ru").balance({ free: 40n, paid: 0n }));
    expect(answer).toContain("Баланс: 40 токенов.");
  });

  it("answers /history with the latest transactions", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser();
    expect(await ask(user, "/history")).toBe(botTexts("en").notLinked);
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    expect(await ask(user, "/history")).toBe(botTexts("en").historyEmpty);

    await grantFaucetTokens(db, {
      callKey: randomUUID(),
      userIds: [userId],
      tokens: 40n,
      reason: "test grant",
    });
    await spendTokens(db, userId, 15n, `test-spend-${randomUUID()}`);
    const answer = await ask(user, "/history");

    const lines = answer.split("\n");
    expect(lines[0]).toBe("Latest transactions, times in UTC:");
    expect(lines[1]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} — Unit load charge: -15, balance 25$/);
    expect(lines[2]).toMatch(/ — grant from the administrator: \+40, balance 40$/);
    expect(lines).toHaveLength(3);
  });

  it("shows the last 10 transactions in Russian", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser("ru");
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    for (let index = 1; index <= HISTORY_COMMAND_LIMIT + 1; index++) {
      await grantFaucetTokens(db, {
        callKey: randomUUID(),
        userIds: [userId],
        tokens: BigInt(index),
        reason: "test grant",
      });
    }

    const lines = (await ask(user, "/history")).split("\n");

    expect(lines[0]).toBe("Последние операции, время UTC:");
    expect(lines[1]).toMatch(/ — начисление от администратора: \+11, баланс 66$/);
    expect(lines[10]).toMatch(/ — начисление от администратора: \+2, баланс 3$/);
    expect(lines.at(-1)).toBe("Показаны последние 10. Всю историю покажет администратор узла.");
    expect(lines).toHaveLength(13);
  });

  it("names transaction kinds in words", () => {
    const at = new Date("2027-03-01T10:05:00Z");
    const kinds = [
      ["free_allowance", "monthly free tokens"],
      ["aggregation", "aggregation topics charge"],
      ["payment.telegram_stars", "token purchase"],
      ["refund.cryptopay", "payment refund"],
      ["test.other", "test.other"],
    ];
    for (const [kind, name] of kinds) {
      const text = botTexts("en").history(
        [{ createdAt: at, kind: kind as string, amount: 0n, balanceAfter: 7n }],
        false,
      );
      expect(text, kind).toContain(`2027-03-01 10:05 — ${name}: 0, balance 7`);
    }
    const russian = botTexts("ru").history(
      [{ createdAt: at, kind: "payment.cryptopay", amount: 5n, balanceAfter: 5n }],
      false,
    );
    expect(russian).toContain("2027-03-01 10:05 — покупка токенов: +5, баланс 5");
  });

  it("answers /paysupport with the contact", async () => {
    const english = await ask(newTelegramUser(), "/paysupport");
    expect(english).toContain(`write to the node's administrator: ${SUPPORT}.`);
    const russian = await ask(newTelegramUser("ru"), "/paysupport");
    expect(russian).toContain(`напишите администратору узла: ${SUPPORT}.`);
  });

  it("answers /help and /start in the user's language", async () => {
    expect(await ask(newTelegramUser("ru"), "/help")).toBe(botTexts("ru").help(false));
    expect(await ask(newTelegramUser("de"), "/start")).toBe(botTexts("en").help(false));
  });

  it("sells tokens with /buy and still credits payments", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser();
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    expect(await ask(user, "/buy 0")).toBe(botTexts("en").buyUsage(1000));
    expect(await ask(user, "/buy 1001")).toBe(botTexts("en").buyUsage(1000));

    const invoicesBefore = fake.invoices.size;
    fake.sendText(user, "/buy 25");
    await vi.waitFor(() => expect(fake.invoices.size).toBe(invoicesBefore + 1), {
      timeout: 5_000,
    });
    const invoice = [...fake.invoices.entries()].find(([, entry]) => entry.chatId === user.id);
    expect(invoice?.[1].amount).toBe(50);
    const orderId = invoice?.[0] as string;

    const attempt = await fake.pay({ payload: orderId, user });
    expect(attempt.ok).toBe(true);
    await vi.waitFor(async () => expect(await orderState(db, orderId)).toBe("paid"), {
      timeout: 5_000,
    });
    expect(await paidBalance(db, userId)).toBe(25n);
    expect(await ask(user, "/balance")).toBe(botTexts("en").balance({ free: 0n, paid: 25n }));
  });

  it("clears a block when the user writes", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser();
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    await db
      .update(telegramLinks)
      .set({ blockedAt: new Date(), blockedReason: "Forbidden: bot was blocked by the user" })
      .where(eq(telegramLinks.userId, userId));

    await ask(user, "/help");
    const link = await linkOf(userId);
    expect(link?.blockedAt).toBeNull();
    expect(link?.blockedReason).toBeNull();
  });

  it("clears a block when the user pays", async () => {
    const userId = await createUser(db);
    const user = newTelegramUser();
    await ask(user, `/link ${(await issueCode(userId)).code}`);
    const invoicesBefore = fake.invoices.size;
    fake.sendText(user, "/buy 5");
    await vi.waitFor(() => expect(fake.invoices.size).toBe(invoicesBefore + 1), {
      timeout: 5_000,
    });
    const invoice = [...fake.invoices.entries()].find(([, entry]) => entry.chatId === user.id);
    const orderId = invoice?.[0] as string;
    await db
      .update(telegramLinks)
      .set({ blockedAt: new Date(), blockedReason: "Forbidden: bot was blocked by the user" })
      .where(eq(telegramLinks.userId, userId));

    const attempt = await fake.pay({ payload: orderId, user });

    expect(attempt.ok).toBe(true);
    await vi.waitFor(async () => expect((await linkOf(userId))?.blockedAt).toBeNull(), {
      timeout: 5_000,
    });
    expect(await orderState(db, orderId)).toBe("paid");
  });
});
