/** The `users` commands of the admin CLI against the REST API over real HTTP on loopback. */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { ADMIN_TOKEN, createTestApi, FakeFederationPort } from "../http/api/test-app.ts";
import { grantFaucetTokens } from "../money/billing/index.ts";
import { spendTokens } from "../money/ledger/index.ts";
import { createUser } from "../payments/test-support.ts";
import { runAdminCli } from "./run.ts";

let database: TestDatabase;
let server: ServerType;
let nodeUrl: string;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runAdminCli([...args, "--url", nodeUrl], {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN },
    cwd: process.cwd(),
    readStdin: async () => "",
  });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "cli-users");
  const app = createTestApi(database, new FakeFederationPort());
  server = await new Promise<ServerType>((resolve) => {
    const created = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () =>
      resolve(created),
    );
  });
  nodeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await database?.drop();
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
