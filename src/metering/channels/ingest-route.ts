/**
 * Shared pieces of the ingest routes that the Pepeunit backend calls: the ingest token check,
 * the error responses they declare and the check of record times against the node's clock.
 */
import { createRoute, type RouteConfig } from "@hono/zod-openapi";
import { jsonResponse } from "../../http/api/routing.ts";
import { ErrorSchema } from "../../http/api/schemas.ts";
import { HttpError } from "../../http/errors.ts";
import { INGEST_SCHEME, requireIngestToken } from "./ingest-auth.ts";

const INGEST_ERROR_RESPONSES = {
  400: jsonResponse(ErrorSchema, "Invalid body: `error.details.issues` names each field"),
  401: jsonResponse(ErrorSchema, "Missing ingest token"),
  403: jsonResponse(ErrorSchema, "Invalid ingest token"),
  503: jsonResponse(ErrorSchema, "Ingest is disabled: PU_NODE_INGEST_TOKEN is not set"),
};

/**
 * Declares a route that requires the ingest token. It adds the token middleware, the bearer
 * security scheme and the 400, 401, 403 and 503 error responses to `config`.
 */
export function ingestRoute<
  P extends string,
  R extends Omit<RouteConfig, "path" | "security" | "middleware"> & { path: P },
>(ingestToken: string | undefined, config: R) {
  return createRoute({
    ...config,
    security: [{ [INGEST_SCHEME]: [] }],
    middleware: [requireIngestToken(ingestToken)] as const,
    responses: { ...config.responses, ...INGEST_ERROR_RESPONSES },
  });
}

/** Accepted range of record times around the node's clock, with the issue text for each side. */
export interface TimeWindow {
  maxAgeMs: number;
  /** Issue message for a time older than `maxAgeMs`. */
  tooOld: string;
  maxFutureMs: number;
  /** Issue message for a time more than `maxFutureMs` ahead. */
  tooFarAhead: string;
}

/**
 * Checks that every time lies within `window` around `now` (milliseconds since the epoch).
 * Throws a 400 {@link HttpError} that lists each time outside it as an issue on the field
 * `<list>[<index>].time`.
 */
export function checkTimeWindow(
  times: readonly Date[],
  list: string,
  now: number,
  window: TimeWindow,
): void {
  const issues: Array<{ location: string; field: string; message: string }> = [];
  times.forEach((time, index) => {
    const field = `${list}[${index}].time`;
    if (time.getTime() < now - window.maxAgeMs) {
      issues.push({ location: "body", field, message: window.tooOld });
    } else if (time.getTime() > now + window.maxFutureMs) {
      issues.push({ location: "body", field, message: window.tooFarAhead });
    }
  });
  const first = issues[0];
  if (first !== undefined) {
    // The whole request is rejected, so a retry after fixing it cannot half-apply.
    throw new HttpError(
      400,
      "invalid_request",
      `Invalid body field ${first.field}: ${first.message}`,
      { issues },
    );
  }
}
