/**
 * Routes of the signed load report: the administrator's report tokens, and `GET /load_limit`,
 * which scrapers call with a report token. docs/load-report.md describes the report.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { Database } from "../../db/client.ts";
import {
  type LoadReportRow,
  REPORT_TOKEN_SCOPES,
  type ReportTokenRow,
  type ReportTokenScope,
} from "../../db/schema/index.ts";
import { latestLoadReport, loadReportsAfter, readLoadReportPayload } from "../../reports/chain.ts";
import {
  checkReportToken,
  createReportToken,
  listReportTokens,
  revokeReportToken,
} from "../../reports/tokens.ts";
import type { NodeServices } from "../../services.ts";
import { errorResponse, HttpError } from "../errors.ts";
import {
  adminRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  setCreatedLocation,
} from "./routing.ts";
import { ErrorSchema, IdParamsSchema } from "./schemas.ts";

/** Name of the report token scheme in the OpenAPI document. */
export const REPORT_TOKEN_SCHEME = "ReportToken";
const MAX_REPORTS = 100;
const LOAD_LIMIT_SCOPE: ReportTokenScope = "load_report:read";

const TimestampSchema = z.string().openapi({ format: "date-time" });

const ReportTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(z.enum(REPORT_TOKEN_SCOPES)),
    createdAt: TimestampSchema,
    lastUsedAt: TimestampSchema.nullable(),
    revokedAt: TimestampSchema.nullable(),
  })
  .openapi("ReportToken");

const CreatedReportTokenSchema = ReportTokenSchema.extend({
  token: z.string().openapi({
    description: "The bearer token. It is shown only in this response; store it now",
  }),
}).openapi("CreatedReportToken");

const ReportTokenCreateSchema = z
  .strictObject({
    name: z.string().min(1).max(200).openapi({ example: "directory.example.com" }),
    scopes: z
      .array(z.enum(REPORT_TOKEN_SCOPES))
      .min(1, "expected at least one scope")
      .default([LOAD_LIMIT_SCOPE])
      .openapi({ description: "Defaults to load_report:read" }),
  })
  .openapi("ReportTokenCreate");

const LoadReportSchema = z
  .object({
    sequence: z.number().int(),
    jws: z.string().openapi({
      description:
        "The signed report: a compact JWS (EdDSA) whose `kid` is the instance actor's key id",
    }),
    sha256: z.string().openapi({ description: "Hex SHA-256 of `jws`; the next report names it" }),
    previousSha256: z.string().nullable(),
    createdAt: TimestampSchema,
    payload: z.record(z.string(), z.unknown()).openapi({
      description: "The JWS payload, decoded for reading; verify `jws`, not this field",
    }),
  })
  .openapi("LoadReport");

const LoadLimitQuerySchema = z.object({
  after: z.coerce
    .number({ error: "expected a whole number, the sequence of the last report you hold" })
    .int("expected a whole number, the sequence of the last report you hold")
    .min(0, "expected a whole number, 0 or more")
    .optional()
    .openapi({
      type: "integer",
      description: `List the reports after this sequence, oldest first, at most ${MAX_REPORTS}; without it, only the latest`,
    }),
});

function tokenJson(row: ReportTokenRow) {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes as ReportTokenScope[],
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

function reportJson(row: LoadReportRow) {
  return {
    sequence: row.sequence,
    jws: row.jws,
    sha256: row.jwsSha256,
    previousSha256: row.previousSha256,
    createdAt: row.createdAt.toISOString(),
    payload: readLoadReportPayload(row.jws) as unknown as Record<string, unknown>,
  };
}

/**
 * Requires `Authorization: Bearer <report token>` with `scope`. Following RFC 6750, a missing,
 * unknown or revoked token gets 401 and a token without the scope gets 403.
 */
export function requireReportToken(db: Database, scope: ReportTokenScope): MiddlewareHandler {
  return async (c, next) => {
    const match = c.req.header("authorization")?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match?.[1]) {
      c.header("WWW-Authenticate", `Bearer realm="pepeunit-node", scope="${scope}"`);
      return errorResponse(
        c,
        401,
        "unauthorized",
        "Missing report token: send the header Authorization: Bearer <token>; the node's administrator creates tokens with POST /api/v1/report-tokens",
      );
    }
    const check = await checkReportToken(db, match[1], scope);
    if (!check.ok && check.reason !== "scope") {
      c.header("WWW-Authenticate", 'Bearer realm="pepeunit-node", error="invalid_token"');
      const message =
        check.reason === "revoked"
          ? "The report token has been revoked; ask the node's administrator for a new one"
          : "The report token is not valid for this node; check that it was copied whole";
      return errorResponse(c, 401, "invalid_token", message);
    }
    if (!check.ok) {
      c.header(
        "WWW-Authenticate",
        `Bearer realm="pepeunit-node", error="insufficient_scope", scope="${scope}"`,
      );
      return errorResponse(
        c,
        403,
        "insufficient_scope",
        `The report token lacks the scope ${scope}; ask the node's administrator for a token with it`,
      );
    }
    await next();
  };
}

export function registerLoadReportRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db } = services;

  app.openAPIRegistry.registerComponent("securitySchemes", REPORT_TOKEN_SCHEME, {
    type: "http",
    scheme: "bearer",
    description:
      "A report token that the node's administrator created with POST /api/v1/report-tokens",
  });

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/report-tokens",
      tags: ["Load report"],
      summary: "Create a report token for a scraper; the response shows it once",
      request: { body: jsonBody(ReportTokenCreateSchema) },
      responses: {
        201: jsonResponse(CreatedReportTokenSchema, "The token; `Location` is its URL"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { row, token } = await createReportToken(db, body);
      setCreatedLocation(c, row.id);
      return c.json({ ...tokenJson(row), token }, 201);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/report-tokens",
      tags: ["Load report"],
      summary: "List report tokens, newest first, without the token texts",
      responses: {
        200: jsonResponse(z.object({ items: z.array(ReportTokenSchema) }), "The tokens"),
        ...errorResponses(401, 403),
      },
    }),
    async (c) => c.json({ items: (await listReportTokens(db)).map(tokenJson) }, 200),
  );

  app.openapi(
    adminRoute(admin, {
      method: "delete",
      path: "/report-tokens/{id}",
      tags: ["Load report"],
      summary: "Revoke a report token; revoking it again changes nothing",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(ReportTokenSchema, "The revoked token"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const row = await revokeReportToken(db, id);
      if (!row) throw new HttpError(404, "report_token_not_found", `Report token ${id} not found`);
      return c.json(tokenJson(row), 200);
    },
  );

  app.openapi(
    {
      method: "get",
      path: "/load_limit",
      tags: ["Load report"],
      summary: "Read the signed load report (report token with load_report:read)",
      description:
        "Returns the latest report, or with `after` the reports that follow that sequence, so a " +
        "scraper can fetch what it missed and verify the chain.",
      security: [{ [REPORT_TOKEN_SCHEME]: [] }],
      middleware: [requireReportToken(db, LOAD_LIMIT_SCOPE)] as const,
      request: { query: LoadLimitQuerySchema },
      responses: {
        200: jsonResponse(
          z.object({ items: z.array(LoadReportSchema) }),
          "The reports, oldest first",
        ),
        400: jsonResponse(ErrorSchema, "Invalid query"),
        401: jsonResponse(ErrorSchema, "Missing, unknown or revoked report token"),
        403: jsonResponse(ErrorSchema, "The token lacks the scope load_report:read"),
        404: jsonResponse(ErrorSchema, "No report has been issued yet"),
      },
    },
    async (c) => {
      const { after } = c.req.valid("query");
      const rows =
        after === undefined
          ? [await latestLoadReport(db)].filter((row) => row !== undefined)
          : await loadReportsAfter(db, after, MAX_REPORTS);
      if (after === undefined && rows.length === 0) {
        throw new HttpError(
          404,
          "load_report_not_found",
          "No load report has been issued yet; the worker issues one after grading each hour",
        );
      }
      return c.json({ items: rows.map(reportJson) }, 200);
    },
  );
}
