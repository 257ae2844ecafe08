/** 400 errors about one request field, in the shape that `validationHook` also produces. */
import { canonicalRuleDomain, InvalidHostError } from "../../policy/domain.ts";
import { HttpError } from "../errors.ts";

/** Returns the 400 `invalid_request` error for one field, naming it and the problem. */
export function invalidFieldError(
  location: "body" | "query",
  field: string,
  message: string,
): HttpError {
  return new HttpError(400, "invalid_request", `Invalid ${location} field ${field}: ${message}`, {
    issues: [{ location, field, message }],
  });
}

/** Returns the canonical form of a domain in the query, or throws a 400 naming the fix. */
export function canonicalQueryDomain(value: string, field = "domain"): string {
  try {
    return canonicalRuleDomain(value);
  } catch (error) {
    if (!(error instanceof InvalidHostError)) throw error;
    throw invalidFieldError("query", field, error.reason);
  }
}
