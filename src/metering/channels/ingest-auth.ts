/** Authentication of the ingest endpoints that the Pepeunit backend calls. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { errorResponse } from "../../http/errors.ts";

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * Requires `Authorization: Bearer <ingest token>`, comparing SHA-256 digests in constant time.
 * When no token is configured the endpoints respond with 503, because accepting unauthenticated counts
 * would let anyone change usage figures.
 */
export function requireIngestToken(ingestToken: string | undefined): MiddlewareHandler {
  const expected = ingestToken === undefined ? undefined : digest(ingestToken);
  return async (c, next) => {
    if (expected === undefined) {
      return errorResponse(
        c,
        503,
        "ingest_disabled",
        "Ingest is disabled on this node; set PU_NODE_INGEST_TOKEN to enable it",
      );
    }
    const match = c.req.header("authorization")?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match?.[1]) {
      c.header("WWW-Authenticate", 'Bearer realm="pepeunit-node-ingest"');
      return errorResponse(
        c,
        401,
        "unauthorized",
        "Missing ingest token: send the header Authorization: Bearer <PU_NODE_INGEST_TOKEN>",
      );
    }
    if (!timingSafeEqual(digest(match[1]), expected)) {
      return errorResponse(c, 403, "forbidden", "The ingest token is not valid for this node");
    }
    await next();
  };
}

/** Name of the ingest bearer scheme in the OpenAPI document. */
export const INGEST_SCHEME = "IngestToken";

/** Declares the ingest bearer scheme once per API app, before the ingest routes. */
export function registerIngestSecurityScheme(app: OpenAPIHono): void {
  app.openAPIRegistry.registerComponent("securitySchemes", INGEST_SCHEME, {
    type: "http",
    scheme: "bearer",
    description: "The node's ingest token (PU_NODE_INGEST_TOKEN), shared with the Pepeunit backend",
  });
}
