/**
 * HTTP transport for the EMQX 5.8 management API (`/api/v5`), shared by the metering client and
 * the bridge driver.
 *
 * It authenticates with an EMQX API key and secret as HTTP Basic credentials, which EMQX 5
 * accepts on every `/api/v5` path and which, unlike dashboard login tokens, do not expire. Every
 * request has a timeout, and every failure is an {@link EmqxApiError} that names the request,
 * the status and EMQX's error code and message.
 */
import { EmqxApiError } from "./errors.ts";
import { errorBodySchema } from "./responses.ts";

const DEFAULT_TIMEOUT_MS = 10_000;

export interface EmqxClientOptions {
  /**
   * The dashboard listener, such as `http://127.0.0.1:18083`, or a URL that already ends in
   * `/api/v5`. Credentials in the URL are used when `apiKey` is not given.
   */
  url: URL;
  apiKey?: string | undefined;
  apiSecret?: string | undefined;
  /** Milliseconds one request may take, reading the body included; 10,000 when unset. */
  timeoutMs?: number;
}

export interface EmqxRequestOptions {
  query?: Record<string, string>;
  body?: unknown;
  accept?: string;
}

/** A response with its status and body text, before any parsing. */
export interface EmqxRawResponse {
  /** Method and path, for example `GET /api/v5/stats`; never the credentials. */
  endpoint: string;
  status: number;
  text: string;
}

/** Sends authenticated requests to one EMQX cluster. */
export class EmqxTransport {
  readonly #apiBase: URL;
  readonly #authorization: string;
  readonly #timeoutMs: number;

  constructor(options: EmqxClientOptions) {
    const base = new URL(options.url.href);
    const apiKey = options.apiKey ?? decodeURIComponent(base.username);
    const apiSecret = options.apiSecret ?? decodeURIComponent(base.password);
    if (apiKey === "" || apiSecret === "") {
      throw new Error(
        "The EMQX API needs an API key and secret: set PU_NODE_EMQX_API_KEY and " +
          "PU_NODE_EMQX_API_SECRET (create the key under System > API Keys in the EMQX dashboard)",
      );
    }
    // fetch() rejects URLs that carry credentials, and they must not reach error messages.
    base.username = "";
    base.password = "";
    base.search = "";
    base.hash = "";
    const basePath = base.pathname.replace(/\/+$/, "");
    base.pathname = basePath.endsWith("/api/v5") ? `${basePath}/` : `${basePath}/api/v5/`;
    this.#apiBase = base;
    this.#authorization = `Basic ${Buffer.from(`${apiKey}:${apiSecret}`).toString("base64")}`;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The API root, such as `http://127.0.0.1:18083/api/v5/`; it never contains credentials. */
  get apiBase(): URL {
    return new URL(this.#apiBase.href);
  }

  /**
   * Sends one request to `path`, relative to the API root. A status outside 2xx throws, unless
   * it is listed in `allowedStatuses`, which lets a caller turn a documented error (404, 409)
   * into an outcome.
   */
  async request(
    method: string,
    path: string,
    options: EmqxRequestOptions = {},
    allowedStatuses: readonly number[] = [],
  ): Promise<EmqxRawResponse> {
    const url = new URL(path, this.#apiBase);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      url.searchParams.set(name, value);
    }
    const endpoint = `${method} ${url.pathname}`;
    const headers: Record<string, string> = {
      authorization: this.#authorization,
      accept: options.accept ?? "application/json",
    };
    if (options.body !== undefined) headers["content-type"] = "application/json";

    const signal = AbortSignal.timeout(this.#timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: options.body === undefined ? null : JSON.stringify(options.body),
        signal,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      const timedOut = signal.aborted;
      throw new EmqxApiError({ kind: timedOut ? "timeout" : "network", endpoint, cause: error });
    }

    const raw = { endpoint, status, text };
    if ((status < 200 || status > 299) && !allowedStatuses.includes(status)) {
      throw emqxHttpError(raw);
    }
    return raw;
  }
}

/** Parses the body as JSON and checks it with a zod schema, or throws `invalid_response`. */
export function parseEmqxJson<T>(
  response: EmqxRawResponse,
  schema: {
    safeParse(value: unknown): { success: true; data: T } | { success: false; error: Error };
  },
): T {
  let body: unknown;
  try {
    body = JSON.parse(response.text);
  } catch {
    throw invalidEmqxResponse(response, `the body is not JSON: ${excerpt(response.text)}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw invalidEmqxResponse(response, parsed.error.message);
  return parsed.data;
}

/** EMQX's `{code, message}` error body, or the start of a body that is not one. */
export function emqxErrorBody(response: EmqxRawResponse): { code?: string; message?: string } {
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(response.text));
    if (parsed.success) return parsed.data;
  } catch {
    // Not JSON: EMQX returns HTML for unknown paths unless the request accepts JSON.
  }
  return response.text === "" ? {} : { message: excerpt(response.text) };
}

export function emqxHttpError(response: EmqxRawResponse): EmqxApiError {
  const body = emqxErrorBody(response);
  return new EmqxApiError({
    kind: "http",
    endpoint: response.endpoint,
    status: response.status,
    ...(body.code === undefined ? {} : { code: body.code }),
    ...(body.message === undefined ? {} : { emqxMessage: body.message }),
  });
}

/** Throws unless the error body of an allowed status carries `code`. */
export function expectEmqxErrorCode(response: EmqxRawResponse, code: string): void {
  if (emqxErrorBody(response).code !== code) throw emqxHttpError(response);
}

export function invalidEmqxResponse(response: EmqxRawResponse, detail: string): EmqxApiError {
  return new EmqxApiError({
    kind: "invalid_response",
    endpoint: response.endpoint,
    status: response.status,
    emqxMessage: detail,
  });
}

function excerpt(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
