/**
 * Shared pieces of route definitions: admin routes, response declarations, page cursors, next
 * links and the `Location` of created resources.
 */
import { createRoute, type RouteConfig, type z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { HttpError } from "../errors.ts";
import { ErrorSchema } from "./schemas.ts";

/** Name of the bearer security scheme in the OpenAPI document. */
export const ADMIN_SCHEME = "AdminToken";
export const ADMIN_SECURITY = [{ [ADMIN_SCHEME]: [] }];

const ERROR_DESCRIPTIONS = {
  400: "Invalid request: `error.details.issues` names each field and the fix",
  401: "Missing admin token",
  403: "Invalid admin token",
  404: "Not found",
  409: "Conflict with the current catalogue",
  422: "The request is valid, but a node policy rejects it, such as a denied git host",
  502: "The remote server did not answer with a usable ActivityPub actor",
} as const;

type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

/**
 * Declares a route that requires the admin token. The `admin` middleware checks the token, and
 * the OpenAPI document lists the bearer security scheme.
 */
export function adminRoute<
  P extends string,
  R extends Omit<RouteConfig, "path" | "security" | "middleware"> & { path: P },
>(admin: MiddlewareHandler, config: R) {
  return createRoute({ ...config, security: ADMIN_SECURITY, middleware: [admin] as const });
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** Declares error responses with the shared error schema. */
export function errorResponses<S extends ErrorStatus>(...statuses: S[]) {
  const responses = {} as Record<S, ReturnType<typeof jsonResponse<typeof ErrorSchema>>>;
  for (const status of statuses) {
    responses[status] = jsonResponse(ErrorSchema, ERROR_DESCRIPTIONS[status]);
  }
  return responses;
}

/** Opaque cursor around the sort key of the last row of a page. */
export function encodePageCursor(key: string): string {
  return Buffer.from(JSON.stringify({ after: key })).toString("base64url");
}

/** Reads a cursor made by {@link encodePageCursor}; throws a 400 {@link HttpError} otherwise. */
export function decodePageCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (typeof value === "object" && value !== null && "after" in value) {
      const after = (value as { after: unknown }).after;
      if (typeof after === "string") return after;
    }
  } catch {
    // Reported below like any other unusable cursor.
  }
  throw invalidCursorError();
}

/** Returns the 400 error for a cursor that no earlier page produced. */
export function invalidCursorError(): HttpError {
  return new HttpError(
    400,
    "invalid_request",
    "Invalid query field cursor: expected the `next` value of a previous page; start again without cursor",
    {
      issues: [
        {
          location: "query",
          field: "cursor",
          message: "expected the `next` value of a previous page",
        },
      ],
    },
  );
}

/** Cuts a `limit + 1` row result to a page and returns the cursor of the next page. */
export function toPage<T>(
  rows: T[],
  limit: number,
  keyOf: (row: T) => string,
): { rows: T[]; next: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    rows: page,
    next: rows.length > limit && last !== undefined ? encodePageCursor(keyOf(last)) : null,
  };
}

/** The paging fields of a list route's query. */
export interface PageQuery {
  limit: number;
  cursor?: string | undefined;
}

/**
 * Loads one page of a list route and returns its response body. `load` is asked for one row more
 * than `limit` after the cursor's key, which shows whether a next page exists. The `Link` header
 * points at that page.
 */
export async function loadPage<Row, Item>(
  c: Context,
  query: PageQuery,
  page: {
    load: (request: { limit: number; after: string | undefined }) => Promise<Row[]>;
    /** The sort key of a row, which the next page's cursor contains. */
    keyOf: (row: Row) => string;
    toItem: (row: Row) => Item;
  },
): Promise<{ items: Item[]; next: string | null }> {
  const rows = await page.load({ limit: query.limit + 1, after: decodePageCursor(query.cursor) });
  const { rows: pageRows, next } = toPage(rows, query.limit, page.keyOf);
  setNextLink(c, next);
  return { items: pageRows.map((row) => page.toItem(row)), next };
}

/** Sets `Location` of a resource created by a POST to the collection: the request path and `id`. */
export function setCreatedLocation(c: Context, id: string): void {
  c.header("Location", `${new URL(c.req.url).pathname}/${id}`);
}

/** Adds `Link: <...>; rel="next"` (RFC 8288) pointing at the next page of the same request. */
export function setNextLink(c: Context, next: string | null): void {
  if (next === null) return;
  const url = new URL(c.req.url);
  url.searchParams.set("cursor", next);
  c.header("Link", `<${url.pathname}${url.search}>; rel="next"`);
}
