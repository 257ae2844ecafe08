/**
 * The `reports` commands of the admin CLI against a real node on loopback. The node's public
 * origin is a small proxy in front of it, so that tests can serve a tampered chain or a
 * redirecting actor under the origin that the reports name as their issuer.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { loadReportSigningKey } from "../../federation/load-report-keys.ts";
import { type CliResult, runCli } from "../../test/cli-harness.ts";
import { findFreePort } from "../../test/global-setup.ts";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import { issueLoadReport } from "../reports/chain.ts";
import { sha256Hex } from "../reports/tokens.ts";

/** More than one page of `GET /load_limit`, which lists at most 100 reports. */
const REPORT_COUNT = 102;

let node: TestNode;
let proxy: Server;
let proxyOrigin: string;

interface ReportJson {
  sequence: number;
  jws: string;
  sha256: string;
}

/** How the proxy changes what the node serves. */
let proxyMode: "pass" | "tamper" | "reorder" | "redirect-actor" | "move-actor" = "pass";
/** `after` of each `GET /load_limit` that reached the proxy. */
let pageRequests: string[] = [];

function cli(args: string[], stdin = ""): Promise<CliResult> {
  return runCli([...args, "--url", node.origin], {
    env: { PU_NODE_ADMIN_TOKEN: node.adminToken },
    cwd: process.cwd(),
    stdin,
  });
}

/** Changes one character of the JWS payload, so the report's signature no longer matches. */
function tamperPayload(jws: string): string {
  const [header, payload, signature] = jws.split(".");
  const position = Math.floor((payload?.length ?? 0) / 2);
  const original = payload?.[position];
  const replacement = original === "A" ? "B" : "A";
  return `${header}.${payload?.slice(0, position)}${replacement}${payload?.slice(position + 1)}.${signature}`;
}

function changeReports(items: ReportJson[]): ReportJson[] {
  const changed = [...items];
  if (proxyMode === "tamper" && changed[4] !== undefined) {
    changed[4] = { ...changed[4], jws: tamperPayload(changed[4].jws) };
  }
  if (proxyMode === "reorder" && changed[2] !== undefined && changed[3] !== undefined) {
    [changed[2], changed[3]] = [changed[3], changed[2]];
  }
  return changed;
}

/** Forwards a request to the node, changing reports or the actor as `proxyMode` selects. */
async function handleProxyRequest(request: IncomingMessage, response: ServerResponse) {
  const url = new URL(request.url ?? "/", proxyOrigin);
  if (proxyMode === "redirect-actor" && url.pathname.includes("/actors/")) {
    response.writeHead(302, { location: new URL(url.pathname, node.origin).href }).end();
    return;
  }
  if (proxyMode === "move-actor" && url.pathname.includes("/actors/") && url.search === "") {
    response.writeHead(301, { location: `${url.pathname}?moved=1` }).end();
    return;
  }
  const headers: Record<string, string> = {};
  for (const name of ["accept", "authorization"]) {
    const value = request.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  const upstream = await fetch(new URL(`${url.pathname}${url.search}`, node.origin), {
    headers,
    redirect: "manual",
  });
  const contentType = upstream.headers.get("content-type") ?? "application/octet-stream";
  let body = await upstream.text();
  if (url.pathname === "/api/v1/load_limit") {
    pageRequests.push(url.searchParams.get("after") ?? "");
    if (upstream.ok) {
      const page = JSON.parse(body) as { items: ReportJson[] };
      body = JSON.stringify({ items: changeReports(page.items) });
    }
  }
  response.writeHead(upstream.status, { "content-type": contentType }).end(body);
}

beforeAll(async () => {
  const port = await findFreePort();
  proxyOrigin = `http://127.0.0.1:${port}`;
  proxy = createServer((request, response) => {
    handleProxyRequest(request, response).catch((error: unknown) => {
      response.writeHead(502).end(String(error));
    });
  });
  await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve));
  expect((proxy.address() as AddressInfo).port).toBe(port);

  node = await startTestNode(inject("postgresAdminUrl"), "clireports", {
    PU_NODE_ORIGIN: proxyOrigin,
  });
  const { db, config, timeSeries } = node.node.services;
  for (let index = 0; index < REPORT_COUNT; index++) {
    await issueLoadReport({
      db,
      store: timeSeries,
      config,
      signingKey: () => loadReportSigningKey(db, config.origin),
    });
  }
});

afterAll(async () => {
  await node?.close();
  await new Promise<void>((resolve) => proxy?.close(() => resolve()));
});

afterEach(() => {
  proxyMode = "pass";
  pageRequests = [];
});

async function createScraperToken(name: string): Promise<{ id: string; token: string }> {
  const created = await cli(["reports", "create-token", name, "--json"]);
  expect(created.stderr).toBe("");
  expect(created.code).toBe(0);
  return JSON.parse(created.stdout) as { id: string; token: string };
}

/** Reads every report of the node directly, for the expected counts and hashes. */
async function nodeReports(token: string): Promise<ReportJson[]> {
  const reports: ReportJson[] = [];
  for (let after = 0; ; ) {
    const response = await fetch(new URL(`/api/v1/load_limit?after=${after}`, node.origin), {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    const { items } = (await response.json()) as { items: ReportJson[] };
    if (items.length === 0) return reports;
    reports.push(...items);
    after = items.at(-1)?.sequence ?? after;
  }
}

describe("reports token commands", () => {
  it("create, list and revoke a token", async () => {
    const created = await cli(["reports", "create-token", "scraper.example.com"]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^NAME +scraper\.example\.com$/m);
    expect(created.stdout).toMatch(/^SCOPES +load_report:read$/m);
    expect(created.stdout).toMatch(/^TOKEN +[A-Za-z0-9_-]{43}$/m);
    expect(created.stdout).toContain("Store the token now");
    const id = created.stdout.match(/^ID +([0-9a-f-]{36})$/m)?.[1];
    expect(id).toBeDefined();

    const list = await cli(["reports", "list-tokens"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID +NAME +SCOPES +CREATED AT +LAST USED AT +REVOKED AT$/m);
    expect(list.stdout).toMatch(
      new RegExp(`^${id} +scraper\\.example\\.com +load_report:read +\\S+ +- +-$`, "m"),
    );
    expect(list.stdout).not.toMatch(/[A-Za-z0-9_-]{43}/);

    const revoked = await cli(["reports", "revoke-token", id ?? ""]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`Revoked report token ${id}.\n`);
    const listed = JSON.parse((await cli(["reports", "list-tokens", "--json"])).stdout) as {
      id: string;
      revokedAt: string | null;
    }[];
    expect(listed.find((token) => token.id === id)?.revokedAt).not.toBeNull();
  });

  it("create rejects an unknown scope", async () => {
    const result = await cli(["reports", "create-token", "x", "--scope", "load_report:write"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("HTTP 400");
  });

  it("revoke of an unknown id fails", async () => {
    const result = await cli(["reports", "revoke-token", "00000000-0000-4000-8000-000000000000"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Report token 00000000-0000-4000-8000-000000000000 not found");
  });
});

describe("reports verify", () => {
  it("verifies the whole chain over two pages", async () => {
    const { token } = await createScraperToken("verify-all");
    const reports = await nodeReports(token);
    expect(reports.length).toBeGreaterThanOrEqual(REPORT_COUNT);
    const last = reports.at(-1);

    const result = await cli(["reports", "verify", proxyOrigin, `--scraper-token=${token}`]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `verified ${reports.length} reports, sequence 1..${last?.sequence}, last sha256 ${last?.sha256}\n`,
    );
    expect(last?.sha256).toBe(sha256Hex(last?.jws ?? ""));
    expect(pageRequests).toEqual(["0", "100", String(last?.sequence)]);
  });

  it("verifies without an admin token", async () => {
    const { token } = await createScraperToken("verify-no-admin");
    const emptyDirectory = await mkdtemp(path.join(tmpdir(), "pepeunit-cli-"));
    const { code, stdout, stderr } = await runCli(
      ["reports", "verify", proxyOrigin, `--scraper-token=${token}`],
      { env: {}, cwd: emptyDirectory },
    );

    await rm(emptyDirectory, { recursive: true });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^verified \d+ reports/);
  });

  it("verifies from an anchor", async () => {
    const { token } = await createScraperToken("verify-anchor");
    const reports = await nodeReports(token);
    const anchor = reports[49];

    const args = ["reports", "verify", proxyOrigin, `--scraper-token=${token}`, "--after", "50"];
    const result = await cli([...args, "--anchor-sha256", anchor?.sha256 ?? "", "--json"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      ok: true,
      issuer: proxyOrigin,
      after: 50,
      count: reports.length - 50,
      first: 51,
      last: reports.at(-1)?.sequence,
    });

    const wrong = await cli([...args, "--anchor-sha256", reports[10]?.sha256 ?? ""]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(
      /^verification failed at position 0 \(sequence 51\): report 51 does not link to report 50/,
    );
  });

  it("fails on a changed report", async () => {
    const { token } = await createScraperToken("verify-tamper");
    proxyMode = "tamper";
    const result = await cli(["reports", "verify", proxyOrigin, `--scraper-token=${token}`]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^verification failed at position 4 \(sequence unknown\): /);
    expect(result.stdout).toContain("the signature does not match its content");
  });

  it("fails on reordered reports", async () => {
    const { token } = await createScraperToken("verify-reorder");
    proxyMode = "reorder";
    const result = await cli([
      "reports",
      "verify",
      proxyOrigin,
      `--scraper-token=${token}`,
      "--json",
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, index: 2, sequence: 4 });
    expect(JSON.parse(result.stdout).reason).toMatch(
      /report 4 follows report 2: a report is missing/,
    );
  });

  it("reads a token that starts with a dash", async () => {
    // Report tokens are base64url, so about one in 64 starts with "-", which parseArgs takes for
    // an option unless the value follows "=".
    const result = await cli(["reports", "verify", proxyOrigin, "--scraper-token=-not-a-token"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("The report token is not valid for this node");
  });

  it("reads the token from standard input", async () => {
    const { token } = await createScraperToken("verify-stdin");
    const args = ["reports", "verify", proxyOrigin, "--scraper-token-file", "-"];
    const result = await cli(args, `${token}\n`);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^verified \d+ reports/);
  });

  it("follows a key redirect within the origin", async () => {
    const { token } = await createScraperToken("verify-moved");
    proxyMode = "move-actor";
    const result = await cli(["reports", "verify", proxyOrigin, `--scraper-token=${token}`]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^verified \d+ reports, sequence 1\.\.\d+, last sha256 [0-9a-f]{64}\n$/,
    );
  });

  it("rejects a key redirect to another origin", async () => {
    const { token } = await createScraperToken("verify-redirect");
    proxyMode = "redirect-actor";
    const result = await cli(["reports", "verify", proxyOrigin, `--scraper-token=${token}`]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(`Cannot fetch the key of ${proxyOrigin}`);
    expect(result.stderr).toContain(`redirects to ${node.origin}/`);
    expect(result.stderr).toContain("on another origin");
  });

  it("fails with the API's message for a wrong token", async () => {
    const result = await cli(["reports", "verify", proxyOrigin, "--scraper-token", "not-a-token"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "Error: The report token is not valid for this node; check that it was copied whole (HTTP 401, invalid_token)\n",
    );
  });

  it("fails for a revoked token", async () => {
    const { id, token } = await createScraperToken("verify-revoked");
    expect((await cli(["reports", "revoke-token", id])).code).toBe(0);
    const result = await cli(["reports", "verify", proxyOrigin, `--scraper-token=${token}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("The report token has been revoked");
  });

  it("rejects the node's listening address as issuer", async () => {
    const { token } = await createScraperToken("verify-issuer");
    const result = await cli(["reports", "verify", node.origin, `--scraper-token=${token}`]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^verification failed at position 0 \(sequence unknown\): /);
    expect(result.stdout).toContain(`which is not on ${node.origin}`);
  });

  it("exits 2 on bad usage", async () => {
    const cases: { args: string[]; message: string }[] = [
      { args: [proxyOrigin], message: "Give either --scraper-token TOKEN or --scraper-token-file" },
      {
        args: [proxyOrigin, "--scraper-token", "t", "--scraper-token-file", "-"],
        message: "Give either --scraper-token TOKEN or --scraper-token-file",
      },
      {
        args: [proxyOrigin, "--scraper-token-file", "-"],
        message: "The report token from standard input is empty",
      },
      {
        args: [proxyOrigin, "--scraper-token", " "],
        message: "The report token from --scraper-token is empty",
      },
      { args: ["node.example", "--scraper-token", "t"], message: "Invalid node origin" },
      {
        args: [`${proxyOrigin}/api`, "--scraper-token", "t"],
        message: "expected only the scheme, host and port",
      },
      { args: [proxyOrigin, "--scraper-token", "t", "--after", "x"], message: "Invalid --after" },
      {
        args: [proxyOrigin, "--scraper-token", "t", "--anchor-sha256", "a".repeat(64)],
        message: "--anchor-sha256 needs --after",
      },
      {
        args: [proxyOrigin, "--scraper-token", "t", "--after", "3", "--anchor-sha256", "abc"],
        message: "Invalid --anchor-sha256",
      },
      { args: [], message: "reports verify expects <node-origin>" },
    ];
    for (const { args, message } of cases) {
      const result = await cli(["reports", "verify", ...args]);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toContain(message);
    }
    expect(pageRequests).toEqual([]);
  });
});
