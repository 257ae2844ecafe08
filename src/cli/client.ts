/**
 * HTTP client of the admin CLI: finds the node's URL and admin token, sends requests to the
 * REST API under `/api/v1`, and turns API errors into {@link ApiError}.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

/** Default port of a node, as `PU_NODE_PORT` defaults in `src/config.ts`. */
export const DEFAULT_NODE_PORT = 8080;

/** Time after which one request is abandoned, in milliseconds. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** A failed request: the API's error, or a node that cannot be reached. */
export class ApiError extends Error {
  /** HTTP status, or null when no response arrived. */
  readonly status: number | null;
  /** The API's error code, such as `domain_rule_not_found`. */
  readonly code: string | null;
  readonly details: unknown;

  constructor(message: string, status: number | null, code: string | null, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A setting the CLI cannot work without, such as the token; exits with the usage status. */
export class CliSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliSetupError";
  }
}

/**
 * Returns the node's base URL: `--url`, or `PU_NODE_LISTEN_HOST` (127.0.0.1 when unset or a
 * wildcard address) on `PU_NODE_PORT`.
 */
export function resolveNodeUrl(option: string | undefined, env: NodeJS.ProcessEnv): URL {
  const listenHost = env.PU_NODE_LISTEN_HOST;
  const host =
    !listenHost || listenHost === "0.0.0.0" || listenHost === "::"
      ? "127.0.0.1"
      : listenHost.includes(":")
        ? `[${listenHost}]`
        : listenHost;
  const text = option ?? `http://${host}:${env.PU_NODE_PORT || DEFAULT_NODE_PORT}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliSetupError(
      `Invalid --url ${JSON.stringify(text)}: expected the node's address, such as http://127.0.0.1:8080`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliSetupError(`Invalid --url ${text}: expected an http:// or https:// URL`);
  }
  return url;
}

/**
 * Returns the admin token: `--token`, then `PU_NODE_ADMIN_TOKEN`, then the `admin-token` file
 * that the node writes into its data directory (`PU_NODE_DATA_DIR`, default `./data`).
 */
export async function resolveAdminToken(
  option: string | undefined,
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<string> {
  if (option) return option;
  if (env.PU_NODE_ADMIN_TOKEN) return env.PU_NODE_ADMIN_TOKEN;
  const file = path.resolve(cwd, env.PU_NODE_DATA_DIR || "./data", "admin-token");
  try {
    const token = (await readFile(file, "utf8")).trim();
    if (token !== "") return token;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") {
      throw new CliSetupError(`Cannot read the admin token from ${file}: ${String(error)}`);
    }
  }
  throw new CliSetupError(
    `No admin token: pass --token, set PU_NODE_ADMIN_TOKEN, or run in the node's directory so that ${file} can be read (PU_NODE_DATA_DIR sets the data directory)`,
  );
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as it is, with `contentType`. */
  body?: string;
  contentType?: string;
}

/** Requests to one node's REST API with its admin token. */
export class ApiClient {
  readonly baseUrl: URL;
  readonly #token: string;

  constructor(nodeUrl: URL, token: string) {
    this.baseUrl = new URL("api/v1/", nodeUrl.href.endsWith("/") ? nodeUrl : `${nodeUrl.href}/`);
    this.#token = token;
  }

  /** Sends a request and returns the parsed JSON body, the text of other bodies, or null. */
  async request(method: string, apiPath: string, options: RequestOptions = {}): Promise<unknown> {
    const url = new URL(apiPath.replace(/^\//, ""), this.baseUrl);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` };
    let body: string | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "text/plain";
      body = options.body;
    }

    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ApiError(unreachableMessage(url, error), null, null);
    }
    const text = await response.text();
    const isJson = (response.headers.get("content-type") ?? "").includes("json");
    const parsed: unknown = isJson && text !== "" ? JSON.parse(text) : text;
    if (!response.ok) throw errorFromResponse(method, url, response.status, parsed);
    return response.status === 204 ? null : parsed;
  }

  /** Reads every page of a list route (`{items, next}`) and returns the items and the last page. */
  async listAll<T>(
    apiPath: string,
    query: RequestOptions["query"] = {},
  ): Promise<{ items: T[]; lastPage: Record<string, unknown> }> {
    const items: T[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = (await this.request("GET", apiPath, {
        query: { ...query, limit: 100, cursor },
      })) as { items: T[]; next: string | null } & Record<string, unknown>;
      items.push(...page.items);
      if (page.next === null) return { items, lastPage: page };
      cursor = page.next;
    }
  }
}

function unreachableMessage(url: URL, error: unknown): string {
  const node = url.origin;
  if (error instanceof Error && error.name === "TimeoutError") {
    return `The node at ${node} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
  }
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return `Cannot reach the node at ${node}: ${reason}; check that it runs, or pass --url`;
}

function errorFromResponse(method: string, url: URL, status: number, body: unknown): ApiError {
  const error =
    typeof body === "object" && body !== null && "error" in body
      ? (body as { error: { code?: unknown; message?: unknown; details?: unknown } }).error
      : undefined;
  if (error !== undefined && typeof error.message === "string") {
    const code = typeof error.code === "string" ? error.code : null;
    return new ApiError(error.message, status, code, error.details);
  }
  const text = typeof body === "string" ? body.slice(0, 200) : "";
  return new ApiError(
    `${method} ${url.pathname} failed with HTTP ${status}${text ? `: ${text}` : ""}`,
    status,
    null,
  );
}
