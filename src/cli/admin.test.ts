/**
 * The admin CLI against the REST API served over real HTTP on loopback, with a real
 * PostgreSQL database behind it: output, JSON output and exit statuses.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type CliResult, runCli } from "../../test/cli-harness.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import {
  domainRuleEvents,
  domainRules,
  gitHostRuleEvents,
  gitHostRules,
} from "../db/schema/index.ts";
import { ADMIN_TOKEN, createTestApi, FakeFederationPort } from "../http/api/test-app.ts";
import { resolveNodeUrl } from "./client.ts";

let database: TestDatabase;
let server: ServerType;
let nodeUrl: string;
let scratch: string;

/** Runs the CLI in this process with the node's URL and token, unless `env` replaces them. */
function cli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<CliResult> {
  return runCli(options.env ? args : [...args, "--url", nodeUrl], {
    env: options.env ?? { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN },
    cwd: scratch,
    stdin: options.stdin,
  });
}

/** Runs the CLI and returns the parsed `--json` output, expecting exit status 0. */
async function cliJson<T>(args: string[]): Promise<T> {
  const result = await cli([...args, "--json"]);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as T;
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "cli-admin");
  const app = createTestApi(database, new FakeFederationPort());
  server = await new Promise<ServerType>((resolve) => {
    const created = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () =>
      resolve(created),
    );
  });
  nodeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-admin-cli-"));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await database?.drop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

beforeEach(async () => {
  await database.db.delete(gitHostRules);
  await database.db.delete(gitHostRuleEvents);
  await database.db.delete(domainRules);
  await database.db.delete(domainRuleEvents);
});

describe("admin CLI git-hosts", () => {
  it("adds, lists, checks and removes rules", async () => {
    const added = await cli([
      "git-hosts",
      "add",
      "Evil.Example",
      "--kind",
      "deny",
      "--reason",
      "malware",
    ]);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^ID {10}[0-9a-f-]{36}$/m);
    expect(added.stdout).toContain("HOST        evil.example");

    const list = await cli(["git-hosts", "list"]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^Mode: open\./);
    expect(lines[2]).toMatch(/^ID +HOST +KIND +SUBDOMAINS +REASON$/);
    expect(lines[3]).toMatch(/^[0-9a-f-]{36} +evil\.example +deny +yes +malware$/);

    const check = await cli(["git-hosts", "check", "git@git.evil.example:o/r.git"]);
    expect(check.code).toBe(3);
    expect(check.stdout).toMatch(
      /^denied: git\.evil\.example: denied by the git host rule for evil\.example: malware \(rule [0-9a-f-]{36}\)\n$/,
    );
    const allowed = await cli(["git-hosts", "check", "https://github.com/o/r.git"]);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toBe("allowed: github.com: no git host rule matches the host\n");

    const [rule] = (await cliJson<{ items: { id: string }[] }>(["git-hosts", "list"])).items;
    const removed = await cli(["git-hosts", "remove", rule?.id ?? ""]);
    expect(removed).toEqual({
      code: 0,
      stdout: `Removed git host rule ${rule?.id}.\n`,
      stderr: "",
    });
    expect((await cli(["git-hosts", "list"])).stdout).toContain("No git host rules.");

    const history = await cli(["git-hosts", "history", rule?.id ?? ""]);
    expect(history.code).toBe(0);
    const events = history.stdout.trimEnd().split("\n").slice(1);
    expect(events.map((line) => line.split(/ +/)[1])).toEqual(["removed", "created"]);
  });

  it("prints JSON with --json", async () => {
    await cli(["git-hosts", "add", "github.com", "--kind", "allow"]);
    const list = await cliJson<{ mode: string; items: { host: string; kind: string }[] }>([
      "git-hosts",
      "list",
    ]);
    expect(list.mode).toBe("allowlist");
    expect(list.items).toMatchObject([{ host: "github.com", kind: "allow" }]);

    const result = await cli(["git-hosts", "check", "https://gitlab.com/g/r.git", "--json"]);
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout)).toMatchObject({
      allowed: false,
      host: "gitlab.com",
      mode: "allowlist",
      rule: null,
    });
  });

  it("prints the API error and exits with 1", async () => {
    const result = await cli(["git-hosts", "add", "github.com:443", "--kind", "allow"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "Error: Invalid body field host: a rule covers every port of a host; remove :443 and name github.com (HTTP 400, invalid_request)\n",
    );

    const missing = await cli(["git-hosts", "remove", "00000000-0000-4000-8000-000000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      "Error: Git host rule 00000000-0000-4000-8000-000000000000 not found (HTTP 404, git_host_rule_not_found)\n",
    );

    const badUrl = await cli(["git-hosts", "check", "git://github.com/o/r.git"]);
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toContain('Invalid repository URL "git://github.com/o/r.git"');
  });
});

describe("admin CLI rules", () => {
  it("adds, updates, lists and lifts a domain rule", async () => {
    const rule = await cliJson<{ id: string; severity: string }>([
      "rules",
      "add",
      "spam.example",
      "--kind",
      "deny",
      "--severity",
      "suspend",
      "--reason",
      "spam",
    ]);
    expect(rule.severity).toBe("suspend");

    const updated = await cli([
      "rules",
      "update",
      rule.id,
      "--severity",
      "reject_content",
      "--no-subdomains",
    ]);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toContain("SEVERITY        reject_content");
    expect(updated.stdout).toContain("SUBDOMAINS      no");

    const list = await cli(["rules", "list", "--kind", "deny"]);
    expect(list.stdout.split("\n")[1]).toMatch(
      /^[0-9a-f-]{36} +spam\.example +deny +reject_content +no +- +spam$/,
    );

    const history = await cli(["rules", "history", rule.id]);
    expect(history.stdout).toContain(
      'severity: "suspend" -> "reject_content", includeSubdomains: true -> false',
    );

    const lifted = await cli(["rules", "lift", rule.id]);
    expect(lifted.stdout).toBe(`Lifted domain rule ${rule.id}.\n`);
    expect((await cli(["rules", "list"])).stdout).toBe("No domain rules.\n");
  });

  it("previews and applies a CSV import", async () => {
    const file = path.join(scratch, "blocks.csv");
    await writeFile(
      file,
      "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n" +
        "bad.example,suspend,false,false,Spam,false\n" +
        "loud.example,silence,false,false,,false\n",
    );

    const preview = await cli(["rules", "import", file, "--dry-run"]);
    expect(preview.code).toBe(0);
    expect(preview.stdout).toContain(
      "Dry run, nothing was written: 2 to create, 0 to update, 0 unchanged, 0 skipped, 0 with problems.",
    );
    expect((await cli(["rules", "list"])).stdout).toBe("No domain rules.\n");

    const applied = await cli(["rules", "import", file]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/^2 +bad\.example +create +suspend +-$/m);
    expect(applied.stdout).toContain("Imported: 2 created, 0 updated");

    const exported = path.join(scratch, "export.csv");
    const written = await cli(["rules", "export", "--output", exported]);
    expect(written.stdout).toBe(`Wrote 2 rules to ${exported}\n`);
    const csv = await readFile(exported, "utf8");
    expect(csv).toContain("bad.example,suspend");
    expect(csv).toContain("loud.example,silence");
    expect((await cli(["rules", "export"])).stdout).toBe(csv);
  });

  it("reports CSV problems from standard input", async () => {
    const result = await cli(["rules", "import", "-"], {
      env: { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN, PU_NODE_PORT: new URL(nodeUrl).port },
      stdin: "#domain,#severity\nbad example,suspend\n",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^Error: 1 lines of the CSV have problems and nothing was imported/,
    );
    expect(result.stderr).toContain("(HTTP 400, invalid_csv)\n  line 2: ");
  });

  it("fails a dry run with problem lines", async () => {
    const csv = "#domain,#severity\nbad example,suspend\nok.example,suspend\n";
    const dryRun = await cli(["rules", "import", "-", "--dry-run"], {
      env: { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN, PU_NODE_PORT: new URL(nodeUrl).port },
      stdin: csv,
    });
    expect(dryRun.code).toBe(1);
    expect(dryRun.stdout).toContain("would write nothing because of the problems");

    const skipping = await cli(["rules", "import", "-", "--dry-run", "--skip-problems"], {
      env: { PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN, PU_NODE_PORT: new URL(nodeUrl).port },
      stdin: csv,
    });
    expect(skipping.code).toBe(0);
  });
});

describe("admin CLI bans", () => {
  it("adds, extends, shows and lifts a ban", async () => {
    const ban = await cliJson<{ id: string; level: number; active: boolean }>([
      "bans",
      "add",
      "flood.example",
      "--reason",
      "floods our inbox",
    ]);
    expect(ban.level).toBe(1);
    expect(ban.active).toBe(true);

    const list = await cli(["bans", "list", "--active", "true"]);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[1]).toMatch(
      /^[0-9a-f-]{36} +flood\.example +1 +admin +yes +\d{4}-/,
    );

    const extended = await cli(["bans", "extend", ban.id, "--permanent", "--reason", "again"]);
    expect(extended.code).toBe(0);
    expect(extended.stdout).toMatch(/EXPIRES +never/);

    const lifted = await cli(["bans", "lift", ban.id, "--reason", "resolved"]);
    expect(lifted.code).toBe(0);
    expect(lifted.stdout).toMatch(/LIFT REASON +resolved/);

    const history = await cliJson<{ type: string }[]>(["bans", "history", ban.id]);
    expect(history.map((event) => event.type)).toEqual(["lifted", "extended", "created"]);
    const historyText = await cli(["bans", "history", ban.id]);
    expect(historyText.stdout.split("\n")[0]).toMatch(/^TIME +EVENT +ACTOR +REASON +CHANGES/);
    expect(historyText.stdout).toContain("resolved");
  });

  it("requires --until or --permanent to extend", async () => {
    const result = await cli([
      "bans",
      "extend",
      "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
      "--reason",
      "x",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--until ISO-TIME or --permanent");
  });
});

describe("admin CLI bridges", () => {
  it("needs at least one UnitNode for a request", async () => {
    const result = await cli(["bridges", "request", "https://node.example"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("expects <peer-origin> <unit-node-id>...");
  });

  it("rejects an invalid QoS before any request", async () => {
    const result = await cli([
      "bridges",
      "request",
      "https://node.example",
      "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
      "--qos",
      "2",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Invalid --qos "2"');
  });

  it("prints the API error of a failed request", async () => {
    const result = await cli([
      "bridges",
      "request",
      "https://node.example",
      "0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("federation_lookup_failed");
    expect((await cli(["bridges", "list"])).stdout).toBe("No bridges.\n");
  });
});

describe("resolveNodeUrl", () => {
  it("follows the node's listen host and port", () => {
    expect(resolveNodeUrl(undefined, {}).href).toBe("http://127.0.0.1:8080/");
    expect(
      resolveNodeUrl(undefined, { PU_NODE_LISTEN_HOST: "127.0.0.21", PU_NODE_PORT: "8122" }).href,
    ).toBe("http://127.0.0.21:8122/");
    expect(resolveNodeUrl(undefined, { PU_NODE_LISTEN_HOST: "0.0.0.0" }).href).toBe(
      "http://127.0.0.1:8080/",
    );
    expect(resolveNodeUrl(undefined, { PU_NODE_LISTEN_HOST: "::1" }).href).toBe(
      "http://[::1]:8080/",
    );
    expect(resolveNodeUrl("https://node.example", { PU_NODE_PORT: "1" }).href).toBe(
      "https://node.example/",
    );
  });
});

describe("admin CLI usage", () => {
  it("prints help for every command", async () => {
    for (const args of [["--help"], ["git-hosts", "--help"], ["rules", "import", "--help"]]) {
      const result = await cli(args);
      expect(result.code, args.join(" ")).toBe(0);
      expect(result.stdout, args.join(" ")).toMatch(/^Usage: npm run admin -- /);
    }
    const help = await cli(["rules", "import", "--help"]);
    expect(help.stdout).toContain("--dry-run");
    expect(help.stdout).toContain("--token TOKEN");
  });

  it("rejects unknown commands, options and missing arguments with 2", async () => {
    const unknown = await cli(["payments", "list"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^Unknown command group "payments"/);

    const option = await cli(["git-hosts", "list", "--colour"]);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("Unknown option '--colour'");
    expect(option.stderr).toContain("Run 'npm run admin -- git-hosts list --help' for usage.");

    const argument = await cli(["git-hosts", "remove"]);
    expect(argument.code).toBe(2);
    expect(argument.stderr).toContain("git-hosts remove expects <id>, but got none");

    const required = await cli(["git-hosts", "add", "github.com"]);
    expect(required.code).toBe(2);
    expect(required.stderr).toContain("Missing option --kind: allow or deny");

    const id = await cli(["rules", "lift", "not-a-uuid"]);
    expect(id.code).toBe(2);
    expect(id.stderr).toContain('Invalid id "not-a-uuid": expected a UUID from the list command');
  });

  it("reads the token from the data directory", async () => {
    const dataDir = path.join(scratch, "data");
    await rm(dataDir, { recursive: true, force: true });
    const env = { PU_NODE_PORT: new URL(nodeUrl).port, PU_NODE_DATA_DIR: dataDir };

    const missing = await cli(["git-hosts", "list"], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${path.join(dataDir, "admin-token")} can be read`);

    await mkdir(dataDir, { recursive: true });
    await writeFile(path.join(dataDir, "admin-token"), `${ADMIN_TOKEN}\n`);
    const found = await cli(["git-hosts", "list"], { env });
    expect(found.code).toBe(0);

    await writeFile(path.join(dataDir, "admin-token"), "wrong-token-0123456789abcdef0123456789\n");
    const wrong = await cli(["git-hosts", "list"], { env });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/\(HTTP 403, /);
  });

  it("reports a node that cannot be reached", async () => {
    const closed = new URL(nodeUrl);
    const probe = serve({ fetch: () => new Response(), hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => probe.once("listening", resolve));
    closed.port = String((probe.address() as AddressInfo).port);
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const result = await cli(["git-hosts", "list", "--url", closed.href, "--token", "x"], {
      env: {},
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Cannot reach the node at ${closed.origin}: `);
    expect(result.stderr).toContain("ECONNREFUSED");
  });

  it("exits with the status of the command when run as a program", async () => {
    await cli(["git-hosts", "add", "evil.example", "--kind", "deny", "--reason", "malware"]);
    const run = promisify(execFile);
    const entry = path.join(import.meta.dirname, "admin.ts");
    const failure: { code?: number; stdout: string } = await run(
      process.execPath,
      [entry, "git-hosts", "check", "https://evil.example/o/r.git", "--url", nodeUrl],
      { env: { ...process.env, PU_NODE_ADMIN_TOKEN: ADMIN_TOKEN } },
    ).catch((error: { code: number; stdout: string }) => error);
    expect(failure.code).toBe(3);
    expect(failure.stdout).toContain("denied: evil.example: denied by the git host rule");
  });
});
