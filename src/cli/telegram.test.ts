/** The `telegram` commands of the admin CLI against the REST API over real HTTP on loopback. */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliResult,
  type CliTestApi,
  runCli,
  startCliTestApi,
} from "../../test/cli-harness.ts";
import type { TestDatabase } from "../../test/postgres.ts";
import { userNotices } from "../db/schema/index.ts";
import { ADMIN_TOKEN } from "../http/api/test-app.ts";
import { createUser } from "../payments/test-support.ts";
import { redeemLinkCode } from "../telegram/links.ts";

let api: CliTestApi;
let database: TestDatabase;

function cli(args: string[]): Promise<CliResult> {
  return runCli([...args, "--url", api.nodeUrl], {
    env: { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN },
    cwd: process.cwd(),
  });
}

beforeAll(async () => {
  api = await startCliTestApi("cli-telegram");
  database = api.database;
});

afterAll(async () => {
  await api?.stop();
});

describe("telegram commands", () => {
  it("issues a code, lists, shows notices and unlinks", async () => {
    const userId = await createUser(database.db);
    await database.db.insert(userNotices).values({
      userId,
      key: `test:${randomUUID()}`,
      kind: "unit_stopped",
      textRu: "Юнит остановлен",
      textEn: "Unit stopped",
    });

    const pending = await cli(["telegram", "notices", userId, "--undelivered"]);
    expect(pending.code).toBe(0);
    expect(pending.stdout).toContain("No linked Telegram chat");
    expect(pending.stdout).toContain("Unit stopped");

    const issued = await cli(["telegram", "link-code", userId, "--ttl", "600", "--json"]);
    expect(issued.stderr).toBe("");
    const code = JSON.parse(issued.stdout) as { code: string; command: string; deepLink: null };
    expect(code.command).toBe(`/link ${code.code}`);
    // The test node has no bot token, so it cannot know the bot's username.
    expect(code.deepLink).toBeNull();
    const outcome = await redeemLinkCode(database.db, code.code, {
      chatId: 31337,
      telegramUserId: 31337,
      language: "en",
    });
    expect(outcome.status).toBe("linked");

    const list = await cli(["telegram", "list"]);
    expect(list.stdout).toMatch(new RegExp(`${userId}\\s+payer-\\S+\\s+31337\\s+en`));

    const withChat = await cli(["telegram", "notices", userId]);
    expect(withChat.stdout).toContain("Telegram chat 31337");

    const removed = await cli(["telegram", "unlink", userId]);
    expect(removed.stdout).toContain(`Unlinked the Telegram chat of user ${userId}.`);
    const again = await cli(["telegram", "unlink", userId]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("has no linked Telegram chat");
  });

  it("rejects a bad lifetime", async () => {
    const userId = await createUser(database.db);
    const result = await cli(["telegram", "link-code", userId, "--ttl", "soon"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Invalid --ttl");
  });
});
