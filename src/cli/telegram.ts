/**
 * `telegram ...`: link codes, linked chats and user notices (`/api/v1/telegram`,
 * `/api/v1/users/{id}/notices`).
 */
import {
  type CommandGroup,
  type CommandSpec,
  deleteCommand,
  idArgument,
  listCommand,
  stringOption,
  UsageError,
} from "./commands.ts";
import { formatRecord, formatTable, type TableColumn } from "./output.ts";

interface LinkCode {
  userId: string;
  code: string;
  expiresAt: string;
  command: string;
  deepLink: string | null;
}

interface TelegramLink {
  userId: string;
  login: string;
  chatId: number;
  language: string;
  linkedAt: string;
  blockedAt: string | null;
  pendingNotices: number;
}

interface UserNotice {
  id: number;
  kind: string;
  textEn: string;
  createdAt: string;
  deliveredAt: string | null;
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
}

const CODE_FIELDS: TableColumn<LinkCode>[] = [
  { header: "USER", value: (code) => code.userId },
  { header: "CODE", value: (code) => code.code },
  { header: "EXPIRES AT", value: (code) => code.expiresAt },
  { header: "SEND TO BOT", value: (code) => code.command },
  { header: "DEEP LINK", value: (code) => code.deepLink },
];

const LINK_COLUMNS: TableColumn<TelegramLink>[] = [
  { header: "USER", value: (link) => link.userId },
  { header: "LOGIN", value: (link) => link.login },
  { header: "CHAT", value: (link) => link.chatId },
  { header: "LANGUAGE", value: (link) => link.language },
  { header: "LINKED AT", value: (link) => link.linkedAt },
  { header: "BLOCKED AT", value: (link) => link.blockedAt },
  { header: "PENDING", value: (link) => link.pendingNotices },
];

const NOTICE_COLUMNS: TableColumn<UserNotice>[] = [
  { header: "ID", value: (notice) => notice.id },
  { header: "KIND", value: (notice) => notice.kind },
  { header: "CREATED AT", value: (notice) => notice.createdAt },
  { header: "DELIVERED AT", value: (notice) => notice.deliveredAt },
  { header: "ATTEMPTS", value: (notice) => notice.attempts },
  { header: "NEXT ATTEMPT", value: (notice) => notice.nextAttemptAt },
  { header: "LAST ERROR", value: (notice) => notice.lastError },
  { header: "TEXT (EN)", value: (notice) => notice.textEn },
];

const linkCode: CommandSpec = {
  name: "link-code",
  summary: "Issue a one-time code that links a user's Telegram chat",
  args: ["<user-id>"],
  options: {
    ttl: {
      type: "string",
      value: "SECONDS",
      description: "Lifetime of the code in seconds, 60 to 2592000; default 86400 (24 hours)",
    },
  },
  details:
    "Give the code to the user, who sends /link <code> to the bot or opens the deep link. " +
    "A new code cancels the user's unused earlier codes.",
  async run({ api }, input) {
    const userId = idArgument(input);
    const ttl = stringOption(input, "ttl");
    if (ttl !== undefined && !/^[0-9]+$/.test(ttl)) {
      throw new UsageError(`Invalid --ttl ${JSON.stringify(ttl)}: expected whole seconds`);
    }
    const code = (await api.request("POST", "/telegram/link-codes", {
      json: { userId, ttlSeconds: ttl === undefined ? undefined : Number(ttl) },
    })) as LinkCode;
    return { text: formatRecord(CODE_FIELDS, code), json: code };
  },
};

const notices: CommandSpec = {
  name: "notices",
  summary: "List a user's notices, newest first, with their delivery state",
  args: ["<user-id>"],
  options: {
    undelivered: { type: "boolean", description: "Only notices not delivered yet" },
  },
  async run({ api }, input) {
    const userId = idArgument(input);
    const query = { undelivered: input.options.undelivered === true ? "true" : undefined };
    const { items, lastPage } = await api.listAll<UserNotice>(`/users/${userId}/notices`, query);
    const telegram = lastPage.telegram as { chatId: number; blockedAt: string | null } | null;
    const header =
      telegram === null
        ? "No linked Telegram chat: notices stay undelivered until the user links one."
        : `Telegram chat ${telegram.chatId}${telegram.blockedAt === null ? "" : `, blocked since ${telegram.blockedAt}`}`;
    const table = items.length === 0 ? "No notices." : formatTable(NOTICE_COLUMNS, items);
    return { text: `${header}\n\n${table}`, json: { telegram, items } };
  },
};

export const telegramCommands: CommandGroup = {
  name: "telegram",
  summary: "Telegram: link codes, linked chats and user notices",
  commands: [
    linkCode,
    listCommand<TelegramLink>({
      summary: "List linked Telegram chats by user id",
      path: "/telegram/links",
      columns: LINK_COLUMNS,
      empty: "No linked Telegram chats.",
    }),
    deleteCommand({
      name: "unlink",
      summary: "Unlink a user's Telegram chat",
      path: (id) => `/telegram/links/${id}`,
      done: (id) => `Unlinked the Telegram chat of user ${id}.`,
    }),
    notices,
  ],
};
