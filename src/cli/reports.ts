/**
 * `reports ...`: this node's report tokens (`/api/v1/report-tokens`), and verification of
 * another node's signed load report chain, read from its `/api/v1/load_limit` with a scraper's
 * report token. docs/load-report.md describes the reports.
 */
import type { DocumentLoader, RemoteDocument } from "@fedify/vocab";
import { z } from "zod";
import type { ReportKeyLoaders } from "../../federation/load-report-keys.ts";
import type { ChainVerification } from "../reports/verify.ts";
import { ApiError, REQUEST_TIMEOUT_MS } from "./client.ts";
import {
  type CommandContext,
  type CommandGroup,
  type CommandInput,
  type CommandSpec,
  deleteCommand,
  stringOption,
  UsageError,
} from "./commands.ts";
import { formatRecord, formatTable, type TableColumn } from "./output.ts";

const TOKENS_PATH = "/report-tokens";

/** Redirects followed within the issuer's origin while fetching its actor document. */
const MAX_KEY_REDIRECTS = 5;

const SHA256_HEX = /^[0-9a-f]{64}$/;

interface ReportToken {
  id: string;
  name: string;
  scopes: string[];
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** Only in the response to creation. */
  token?: string;
}

const TOKEN_COLUMNS: TableColumn<ReportToken>[] = [
  { header: "ID", value: (token) => token.id },
  { header: "NAME", value: (token) => token.name },
  { header: "SCOPES", value: (token) => token.scopes.join(",") },
  { header: "CREATED AT", value: (token) => token.createdAt },
  { header: "LAST USED AT", value: (token) => token.lastUsedAt },
  { header: "REVOKED AT", value: (token) => token.revokedAt },
];

const CREATED_TOKEN_FIELDS: TableColumn<ReportToken>[] = [
  ...TOKEN_COLUMNS.slice(0, 4),
  { header: "TOKEN", value: (token) => token.token },
];

const createToken: CommandSpec = {
  name: "create-token",
  summary: "Create a report token for a scraper; the token text is printed only once",
  args: ["<name>"],
  options: {
    scope: {
      type: "string",
      value: "SCOPES",
      description: "Comma-separated scopes of the token; default load_report:read",
    },
  },
  details:
    "The node keeps only the SHA-256 of the token, so store the printed token now and give it " +
    "to the scraper, which sends it as Authorization: Bearer <token> to GET /api/v1/load_limit.",
  async run({ api }, input) {
    const scopeText = stringOption(input, "scope");
    const scopes = scopeText
      ?.split(",")
      .map((scope) => scope.trim())
      .filter((scope) => scope !== "");
    if (scopes?.length === 0) {
      throw new UsageError("Invalid --scope: expected one or more comma-separated scopes");
    }
    const token = (await api.request("POST", TOKENS_PATH, {
      json: { name: input.args[0], scopes },
    })) as ReportToken;
    const notice = "Store the token now: the node shows it only in this output.";
    return { text: `${formatRecord(CREATED_TOKEN_FIELDS, token)}\n\n${notice}`, json: token };
  },
};

const listTokens: CommandSpec = {
  name: "list-tokens",
  summary: "List report tokens, newest first, without the token texts",
  async run({ api }) {
    // The route returns every token in one response, without the `next` cursor of paged lists.
    const { items } = (await api.request("GET", TOKENS_PATH)) as { items: ReportToken[] };
    const text = items.length === 0 ? "No report tokens." : formatTable(TOKEN_COLUMNS, items);
    return { text, json: items };
  },
};

const revokeToken = deleteCommand({
  name: "revoke-token",
  summary: "Revoke a report token; revoking it again changes nothing",
  path: (id) => `${TOKENS_PATH}/${id}`,
  done: (id) => `Revoked report token ${id}.`,
});

/** The fields of a `GET /load_limit` response that verification reads. */
const LoadLimitPageSchema = z.object({
  items: z.array(z.looseObject({ sequence: z.number().int(), jws: z.string() })),
});

/** Parses `<node-origin>`: an http or https URL without a path, query or fragment. */
function parseIssuerOrigin(text: string): URL {
  if (!URL.canParse(text)) {
    throw new UsageError(
      `Invalid node origin ${JSON.stringify(text)}: expected a URL such as https://node.example.com`,
    );
  }
  const url = new URL(text);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`Invalid node origin ${text}: expected an http:// or https:// URL`);
  }
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
    throw new UsageError(
      `Invalid node origin ${text}: expected only the scheme, host and port, such as ${url.origin}`,
    );
  }
  return new URL(url.origin);
}

/** Parses `--after`: a whole number, 0 or more; 0 when the option is missing. */
function parseAfter(input: CommandInput): number {
  const text = stringOption(input, "after");
  if (text === undefined) return 0;
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(
      `Invalid --after ${JSON.stringify(text)}: expected a whole number, the sequence of the last report you trust`,
    );
  }
  return Number(text);
}

function parseAnchor(
  input: CommandInput,
  after: number,
): { sequence: number; sha256: string } | undefined {
  const sha256 = stringOption(input, "anchor-sha256");
  if (sha256 === undefined) return undefined;
  if (!SHA256_HEX.test(sha256)) {
    throw new UsageError(
      `Invalid --anchor-sha256 ${JSON.stringify(sha256)}: expected 64 lower-case hex digits`,
    );
  }
  if (after === 0) {
    throw new UsageError(
      "--anchor-sha256 needs --after: the sequence of the report whose SHA-256 it is",
    );
  }
  return { sequence: after, sha256 };
}

/** Returns the token of `--scraper-token`, or the first line of `--scraper-token-file`. */
async function readScraperToken(context: CommandContext, input: CommandInput): Promise<string> {
  const text = stringOption(input, "scraper-token");
  const file = stringOption(input, "scraper-token-file");
  if ((text === undefined) === (file === undefined)) {
    throw new UsageError("Give either --scraper-token TOKEN or --scraper-token-file FILE");
  }
  const token = (text ?? (await context.readInput(file ?? "-")).split("\n")[0] ?? "").trim();
  if (token === "") {
    let source = file ?? "--scraper-token";
    if (file === "-") source = "standard input";
    throw new UsageError(`The report token from ${source} is empty`);
  }
  return token;
}

function describeCause(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") {
    return `no response within ${REQUEST_TIMEOUT_MS / 1000} s`;
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Returns the API's `{error: {message, code}}` of a failed response as an {@link ApiError}. */
async function errorFromResponse(url: URL, response: Response): Promise<ApiError> {
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = (body as { error?: { message?: unknown; code?: unknown } } | undefined)?.error;
  if (typeof error?.message === "string") {
    const code = typeof error.code === "string" ? error.code : null;
    return new ApiError(error.message, response.status, code);
  }
  return new ApiError(
    `GET ${url.href} failed with HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
    response.status,
    null,
  );
}

/** Fetches one page of reports that follow sequence `after`, oldest first. */
async function fetchReportPage(
  issuer: URL,
  scraperToken: string,
  after: number,
): Promise<z.infer<typeof LoadLimitPageSchema>["items"]> {
  const url = new URL("/api/v1/load_limit", issuer);
  url.searchParams.set("after", String(after));
  let response: Response;
  try {
    // The token is sent only to the issuer's origin, so redirects are not followed.
    response = await fetch(url, {
      headers: { authorization: `Bearer ${scraperToken}`, accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new ApiError(`Cannot fetch ${url.href}: ${describeCause(error)}`, null, null);
  }
  if (response.status >= 300 && response.status < 400) {
    throw new ApiError(
      `${url.href} redirects to ${response.headers.get("location") ?? "another address"}; pass the origin that serves the reports itself, because the reports name it as their issuer`,
      response.status,
      null,
    );
  }
  if (!response.ok) throw await errorFromResponse(url, response);

  let body: unknown;
  try {
    body = await response.json();
  } catch (error) {
    throw new ApiError(`${url.href} returned invalid JSON: ${describeCause(error)}`, 200, null);
  }
  const page = LoadLimitPageSchema.safeParse(body);
  if (!page.success) {
    throw new ApiError(
      `${url.href} returned no list of reports: ${page.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`,
      200,
      null,
    );
  }
  return page.data.items;
}

/** Fetches every report after sequence `after`, page by page until an empty page. */
async function fetchReportsAfter(
  issuer: URL,
  scraperToken: string,
  after: number,
): Promise<string[]> {
  const reports: string[] = [];
  let cursor = after;
  for (;;) {
    const items = await fetchReportPage(issuer, scraperToken, cursor);
    const last = items.at(-1);
    if (last === undefined) return reports;
    // The sequence fields are not signed, so they only drive paging; verification reads the JWS.
    if (last.sequence <= cursor) {
      throw new ApiError(
        `${issuer.origin} returned report ${last.sequence} for reports after ${cursor}, so paging cannot go on`,
        200,
        null,
      );
    }
    reports.push(...items.map((item) => item.jws));
    cursor = last.sequence;
  }
}

/**
 * Fetches a JSON-LD document from the issuer's origin only. Redirects are followed within that
 * origin and rejected to any other, so the key always comes from the node that the reports name.
 */
async function fetchIssuerDocument(issuer: URL, address: string): Promise<RemoteDocument> {
  let url = new URL(address);
  url.hash = "";
  for (let redirects = 0; ; redirects++) {
    if (url.origin !== issuer.origin) {
      throw new Error(`rejected ${url.href}: it is not on ${issuer.origin}, the reports' issuer`);
    }
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { accept: "application/activity+json, application/ld+json; q=0.9" },
        redirect: "manual",
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new Error(`cannot fetch ${url.href}: ${describeCause(error)}`);
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel();
      if (redirects >= MAX_KEY_REDIRECTS) {
        throw new Error(`${url.href} redirected more than ${MAX_KEY_REDIRECTS} times`);
      }
      const target = new URL(location, url);
      if (target.origin !== issuer.origin) {
        throw new Error(
          `${url.href} redirects to ${target.href}, on another origin; the key must be served by ${issuer.origin}`,
        );
      }
      url = target;
      continue;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`GET ${url.href} failed with HTTP ${response.status}`);
    }
    try {
      return { contextUrl: null, documentUrl: url.href, document: await response.json() };
    } catch (error) {
      throw new Error(`${url.href} returned invalid JSON: ${describeCause(error)}`);
    }
  }
}

/**
 * Loaders for the issuer's actor document. JSON-LD contexts come from the copies that Fedify
 * bundles, or else from the issuer's origin; contexts on other hosts are rejected.
 */
async function issuerLoaders(issuer: URL): Promise<ReportKeyLoaders> {
  const { preloadedContexts } = await import("@fedify/fedify/runtime");
  const documentLoader: DocumentLoader = (url) => fetchIssuerDocument(issuer, url);
  const contextLoader: DocumentLoader = async (url) => {
    const preloaded = preloadedContexts[url];
    if (preloaded !== undefined) return { contextUrl: null, documentUrl: url, document: preloaded };
    return await fetchIssuerDocument(issuer, url);
  };
  return { documentLoader, contextLoader };
}

function verificationText(result: ChainVerification, issuer: URL, after: number): string {
  if (!result.ok) {
    const sequence = result.sequence === null ? "unknown" : String(result.sequence);
    return `verification failed at position ${result.index} (sequence ${sequence}): ${result.reason}`;
  }
  if (result.count === 0) {
    return `verified 0 reports: ${issuer.origin} lists no reports after sequence ${after}`;
  }
  return `verified ${result.count} reports, sequence ${result.first}..${result.last}, last sha256 ${result.lastSha256}`;
}

const verify: CommandSpec = {
  name: "verify",
  summary: "Verify another node's signed load report chain with its published key",
  args: ["<node-origin>"],
  options: {
    "scraper-token": {
      type: "string",
      value: "TOKEN",
      description: "Report token with load_report:read that the other node's administrator issued",
    },
    "scraper-token-file": {
      type: "string",
      value: "FILE",
      description:
        "Read the report token from this file, or from standard input for -, instead of the command line",
    },
    after: {
      type: "string",
      value: "SEQ",
      description: "Verify only the reports after this sequence; default 0, the whole chain",
    },
    "anchor-sha256": {
      type: "string",
      value: "HEX",
      description:
        "SHA-256 of report SEQ from an earlier run; the first fetched report must link to it",
    },
  },
  details:
    "Reads every report after --after from <node-origin>/api/v1/load_limit, fetches the public " +
    "key that their JWS kid names from the node's instance actor (redirects to another origin " +
    "are rejected), and checks each signature, the sequence numbers and the hash links. " +
    "Exit status 0: the chain is valid; 1: a report failed, or a request failed. " +
    "The command sends nothing to this node and needs no admin token.",
  needsAdminToken: false,
  async run(context, input) {
    const issuer = parseIssuerOrigin(input.args[0] ?? "");
    const after = parseAfter(input);
    const anchor = parseAnchor(input, after);
    const scraperToken = await readScraperToken(context, input);

    const reports = await fetchReportsAfter(issuer, scraperToken, after);
    // Fedify and the verifier load only here, so that the other commands start quickly.
    const { fetchReportKeyWithLoaders } = await import("../../federation/load-report-keys.ts");
    const { verifyLoadReportChainFromIssuer } = await import("../reports/verify.ts");
    const loaders = await issuerLoaders(issuer);
    const fetchKey = async (kid: URL) => {
      try {
        return await fetchReportKeyWithLoaders(kid, loaders);
      } catch (error) {
        throw new ApiError(
          `Cannot fetch the key of ${issuer.origin}: ${describeCause(error)}`,
          null,
          null,
        );
      }
    };
    const result = await verifyLoadReportChainFromIssuer(reports, issuer, fetchKey, { anchor });
    return {
      text: verificationText(result, issuer, after),
      json: { issuer: issuer.origin, after, ...result },
      exitCode: result.ok ? 0 : 1,
    };
  },
};

export const reportCommands: CommandGroup = {
  name: "reports",
  summary: "Load reports: this node's report tokens, and verification of another node's reports",
  commands: [createToken, listTokens, revokeToken, verify],
};
