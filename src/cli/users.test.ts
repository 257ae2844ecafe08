/** The `users` commands of the admin CLI against the REST API over real HTTP on loopback. */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliResult,
  type CliTestApi,
  runCli,
  startCliTestApi,
} from "../../test/cli-harness.ts";
import type { TestDatabase } from "../../test/postgres.ts";
import { ADMIN_TOKEN } from "../http/api/test-app.ts";
import { grantFaucetTokens } from "../money/billing/index.ts";
import { spendTokens } from "../money/ledger/index.ts";
import { createUser } from "../payments/test-support.ts";

let api: CliTestApi;
let database: TestDatabase;

function cli(args: string[]): Promise<CliResult> {
  return runCli([...args, "--url", api.nodeUrl], {
    env: { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN },
    cwd: process.cwd(),
  });
}

beforeAll(async () => {
  api = await startCliTestApi("cli-users");
  database = api.database;
});

afterAll(async () => {
  await api?.stop();
});

describe("users ledger", () => {
  it("prints the balance and the transactions", async () => {
    const userId = await createUser(database.db);
    const empty = await cli(["users", "ledger", userId]);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toContain("Balance: 0 tokens (free 0, paid 0)");
    expect(empty.stdout).toContain("No transactions.");

    await grantFaucetTokens(database.db, {
      callKey: randomUUID(),
      userIds: [userId],
      tokens: 40n,
      reason: "spring grant",
    });
    await spendTokens(database.db, userId, 15n, `test-spend-${randomUUID()}`);

    const full = await cli(["users", "ledger", userId]);
    expect(full.stderr).toBe("");
    expect(full.stdout).toContain("Balance: 25 tokens (free 25, paid 0)");
    expect(full.stdout).toMatch(/\n\d+\s+\S+\s+usage\s+-15\s+-\s+-15\s+25\s+-\n/);
    expect(full.stdout).toMatch(/\n\d+\s+\S+\s+faucet\s+40\s+-\s+40\s+40\s+spring grant/);
    expect(full.stdout).not.toContain("Older transactions exist");

    const limited = await cli(["users", "ledger", userId, "--limit", "1", "--json"]);
    const body = JSON.parse(limited.stdout) as { items: { kind: string }[]; next: string | null };
    expect(body.items.map((item) => item.kind)).toEqual(["usage"]);
    expect(body.next).not.toBeNull();
    const shortText = await cli(["users", "ledger", userId, "--limit", "1"]);
    expect(shortText.stdout).toContain("Older transactions exist; raise --limit to list more.");
  });

  it("reports an unknown user and a bad limit", async () => {
    const missing = await cli(["users", "ledger", randomUUID()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("not found");
    expect(missing.stderr).toContain("user_not_found");

    const badLimit = await cli(["users", "ledger", randomUUID(), "--limit", "0"]);
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain("Invalid --limit");
  });
});
