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
  origin: URL,
): MiddlewareHandler {
  return async (c, next) => {
    return await federation.fetch(withOrigin(c.req.raw, origin), {
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

/**
 * Returns the request as addressed to the node's public origin. Behind a reverse proxy the
 * node sees its internal address, but peers sign (RFC 9421 `@target-uri`) and Fedify builds
 * collection links from the public URL.
 */
export function withOrigin(request: Request, origin: URL): Request {
  const url = new URL(request.url);
  if (url.origin === origin.origin) return request;
  const publicUrl = new URL(`${url.pathname}${url.search}`, origin);
  return new Request(publicUrl, {
    method: request.method,
    headers: request.headers,
    body: request.body,
    // Node's fetch Request needs this to pass a streamed body on.
    duplex: "half",
  } as RequestInit);
}
