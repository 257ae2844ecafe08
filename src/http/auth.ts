import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { errorResponse } from "./errors.ts";

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * Requires `Authorization: Bearer <admin token>`. Compares SHA-256 digests in constant time, so
 * neither the token's content nor its length leaks through timing.
 */
export function requireAdminToken(adminToken: string): MiddlewareHandler {
  const expected = digest(adminToken);
  return async (c, next) => {
    const header = c.req.header("authorization");
    const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match?.[1]) {
      c.header("WWW-Authenticate", 'Bearer realm="pepeunit-node"');
      return errorResponse(
        c,
        401,
        "unauthorized",
        "Missing admin token: send the header Authorization: Bearer <PU_NODE_ADMIN_TOKEN>",
      );
    }
    if (!timingSafeEqual(digest(match[1]), expected)) {
      return errorResponse(c, 403, "forbidden", "The admin token is not valid for this node");
    }
    await next();
  };
}
