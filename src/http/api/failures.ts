/**
 * Turns validation failures, catalogue failures and framework errors into the one error shape of
 * `src/http/errors.ts`.
 */
import type { Hook } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import type { CatalogueFailure, CatalogueResult } from "../../catalogue/validation.ts";
import { getNodeLogger } from "../../logging.ts";
import { errorResponse, HttpError } from "../errors.ts";

const logger = getNodeLogger("http", "api");

/** Request location of each validation target, in the words of the OpenAPI document. */
const LOCATIONS: Record<string, string> = {
  json: "body",
  query: "query",
  param: "path",
  header: "header",
  cookie: "cookie",
};

export interface FieldIssue {
  location: string;
  field: string;
  message: string;
}

function fieldPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else text += text === "" ? String(part) : `.${String(part)}`;
  }
  return text;
}

/** Flattens zod issues into one entry per field; unknown keys become one entry each. */
export function describeIssues(error: ZodError, location: string): FieldIssue[] {
  const issues: FieldIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        issues.push({
          location,
          field: fieldPath([...issue.path, key]),
          message: "unknown field; remove it",
        });
      }
      continue;
    }
    const missing = issue.code === "invalid_type" && /received undefined$/.test(issue.message);
    issues.push({
      location,
      field: fieldPath(issue.path) || "(body)",
      message: missing ? "missing; this field is required" : issue.message,
    });
  }
  return issues;
}

/** Validator hook of every route: a failed check returns 400 naming each field and the fix. */
export const validationHook: Hook<unknown, Env, string, Response | undefined> = (result, c) => {
  if (result.success) return undefined;
  const location = LOCATIONS[result.target] ?? result.target;
  const issues = describeIssues(result.error, location);
  const first = issues[0];
  const summary = first ? `${location} field ${first.field}: ${first.message}` : "invalid request";
  return errorResponse(c, 400, "invalid_request", `Invalid ${summary}`, { issues });
};

/** Maps an expected catalogue failure to its HTTP status and error code. */
export function failureToHttpError(failure: CatalogueFailure, location = "body"): HttpError {
  switch (failure.kind) {
    case "invalid":
      return new HttpError(
        400,
        "invalid_request",
        `Invalid ${location} field ${failure.field}: ${failure.message}`,
        { issues: [{ location, field: failure.field, message: failure.message }] },
      );
    case "not_found":
      return notFound(failure.entity, failure.id);
    case "name_taken":
      return new HttpError(
        409,
        "name_taken",
        `The ${failure.entity === "repo" ? "Repo" : "Unit"} name ${failure.name} is already in use on this instance; choose another name`,
        { field: "name" },
      );
    case "visibility_too_open":
      return new HttpError(
        409,
        "visibility_too_open",
        `Invalid ${failure.field}: ${failure.message}`,
        {
          field: failure.field,
        },
      );
    case "mirrored":
      return new HttpError(
        409,
        "mirrored_from_pepeunit",
        `${failure.entity === "repo" ? "Repo" : "Unit"} ${failure.id} is mirrored from Pepeunit; change it in Pepeunit, the importer overwrites changes made here`,
      );
    case "git_host_denied":
      return new HttpError(
        422,
        "git_host_denied",
        `Invalid ${location} field ${failure.field}: the repository host ${failure.host} is not accepted (${failure.reason}); use a repository on an allowed host`,
        { field: failure.field, host: failure.host, ruleId: failure.ruleId },
      );
  }
}

/** Returns the 404 error of a Repo or Unit that does not exist. */
export function notFound(entity: "repo" | "unit", id: string): HttpError {
  const label = entity === "repo" ? "Repo" : "Unit";
  return new HttpError(404, `${entity}_not_found`, `${label} ${id} not found`);
}

/** Returns the value of a catalogue result, or throws its failure as an {@link HttpError}. */
export function unwrapResult<T>(result: CatalogueResult<T>, location = "body"): T {
  if (!result.ok) throw failureToHttpError(result.failure, location);
  return result.value;
}

/** Error handler of the API routes: framework errors keep their status, the rest are logged. */
export function handleApiError(error: Error, c: Context): Response {
  if (error instanceof HttpError) {
    return errorResponse(c, error.status, error.code, error.message, error.details);
  }
  if (error instanceof HTTPException) {
    // Hono's JSON validator raises 400 "Malformed JSON in request body"; zod-openapi raises 415
    // for a body without a JSON Content-Type.
    switch (error.status) {
      case 400:
        if (!error.message.startsWith("Malformed JSON")) {
          return errorResponse(c, 400, "bad_request", error.message);
        }
        return errorResponse(
          c,
          400,
          "malformed_json",
          "The request body is not valid JSON; send a JSON object with Content-Type: application/json",
        );
      case 413:
        return errorResponse(c, 413, "payload_too_large", "The request body is too large");
      case 415:
        return errorResponse(
          c,
          415,
          "unsupported_media_type",
          "Unsupported request body type; send JSON with Content-Type: application/json",
        );
      default:
        return errorResponse(c, error.status, "http_error", error.message);
    }
  }
  logger.error("API request {method} {path} failed: {error}", {
    method: c.req.method,
    path: new URL(c.req.url).pathname,
    error,
  });
  return errorResponse(c, 500, "internal_error", "Internal error; see the node log for details");
}
