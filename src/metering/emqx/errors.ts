/**
 * Failures of the EMQX management API client. Messages name the endpoint, the HTTP status and
 * EMQX's own error `code` and `message`. They never contain the API key, the secret or the
 * `Authorization` header.
 */

/**
 * How a call failed: `http` (EMQX returned an error status), `timeout`, `network` (no
 * response) or `invalid_response` (a success status whose body does not match the API reference).
 */
export type EmqxFailureKind = "http" | "timeout" | "network" | "invalid_response";

export interface EmqxApiErrorFields {
  kind: EmqxFailureKind;
  /** Method and path, for example `GET /api/v5/stats`; never the credentials. */
  endpoint: string;
  status?: number;
  /** EMQX's error code from the body, for example `BAD_API_KEY_OR_SECRET` or `EXCEED_LIMIT`. */
  code?: string;
  /** EMQX's error message from the body. */
  emqxMessage?: string;
  cause?: unknown;
}

/** A failed call to the EMQX management API. */
export class EmqxApiError extends Error {
  readonly kind: EmqxFailureKind;
  readonly endpoint: string;
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly emqxMessage: string | undefined;

  constructor(fields: EmqxApiErrorFields) {
    super(describeFailure(fields), fields.cause === undefined ? {} : { cause: fields.cause });
    this.name = "EmqxApiError";
    this.kind = fields.kind;
    this.endpoint = fields.endpoint;
    this.status = fields.status;
    this.code = fields.code;
    this.emqxMessage = fields.emqxMessage;
  }
}

function describeFailure(fields: EmqxApiErrorFields): string {
  const prefix = `EMQX API ${fields.endpoint}`;
  switch (fields.kind) {
    case "http": {
      const code = fields.code === undefined ? "" : ` ${fields.code}`;
      const message = fields.emqxMessage === undefined ? "" : `: ${fields.emqxMessage}`;
      return `${prefix} failed with status ${fields.status}${code}${message}${hintFor(fields)}`;
    }
    case "timeout":
      return `${prefix} timed out; check that PU_NODE_EMQX_API_URL points at a running EMQX`;
    case "network":
      return `${prefix} failed before a response arrived (${errorText(fields.cause)}); check PU_NODE_EMQX_API_URL`;
    case "invalid_response":
      return `${prefix} returned a response that does not match the EMQX 5.8 API: ${fields.emqxMessage ?? "unknown shape"}`;
  }
}

function hintFor(fields: EmqxApiErrorFields): string {
  if (fields.status === 401) {
    return "; check PU_NODE_EMQX_API_KEY and PU_NODE_EMQX_API_SECRET (an EMQX API key, not a dashboard user)";
  }
  if (fields.status === 404 && fields.code === "NOT_FOUND") {
    return "; check that PU_NODE_EMQX_API_URL is the EMQX dashboard listener, such as http://127.0.0.1:18083";
  }
  return "";
}

function errorText(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : "";
    return `${cause.message}${inner}`;
  }
  return String(cause);
}
