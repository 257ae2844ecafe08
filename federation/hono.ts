/**
 * Hono middleware that hands ActivityPub requests to Fedify and everything else to the next
 * handler. `@fedify/hono` is not published on the npm registry this project uses, so the node
 * carries this equivalent.
 */
import type { Federation } from "@fedify/fedify";
import type { Context, MiddlewareHandler } from "hono";

export function federationMiddleware<T>(
  federation: Federation<T>,
  contextData: (c: Context) => T | Promise<T>,
): MiddlewareHandler {
  return async (c, next) => {
    return await federation.fetch(c.req.raw, {
      contextData: await contextData(c),
      onNotFound: async () => {
        await next();
        return c.res;
      },
      onNotAcceptable: async () => {
        // Let Hono render a non-ActivityPub page for the same path if it has one.
        await next();
        if (c.res.status !== 404) return c.res;
        return new Response("Not acceptable: request application/activity+json", {
          status: 406,
          headers: { "Content-Type": "text/plain; charset=utf-8", Vary: "Accept" },
        });
      },
    });
  };
}
