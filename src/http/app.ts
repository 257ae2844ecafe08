/**
 * The node's HTTP application: ActivityPub (Fedify), the REST API under `/api/v1`, the landing
 * page and health check. Built once per process by `src/server.ts` and in tests.
 */
import { withContext } from "@logtape/logtape";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { federationMiddleware } from "../../federation/hono.ts";
import { inboxGuard } from "../../federation/inbox-guard.ts";
import type { NodeFederation } from "../../federation/setup.ts";
import { getNodeLogger } from "../logging.ts";
import type { InboxDetectors } from "../policy/detectors.ts";
import type { PolicyGate } from "../policy/gate.ts";
import type { NodeServices } from "../services.ts";
import { createApiRoutes } from "./api/index.ts";
import { errorResponse, HttpError } from "./errors.ts";
import { renderLandingPage } from "./landing.ts";
import type { NodeMetrics } from "./metrics.ts";

const logger = getNodeLogger("http");

function tooLarge(limit: number) {
  return (c: Context) => {
    // The unread rest of the body stays on the socket, so the client must not reuse it.
    c.header("Connection", "close");
    return errorResponse(
      c,
      413,
      "payload_too_large",
      `The request body is larger than ${limit} bytes, the limit of this endpoint`,
    );
  };
}

export function createApp(
  services: NodeServices,
  federation: NodeFederation,
  metrics: NodeMetrics,
  gate: PolicyGate,
  detectors?: InboxDetectors,
): Hono {
  const { config } = services;
  const app = new Hono();
  app.use(metrics.httpMiddleware);

  app.use(async (c, next) => {
    const requestId = c.req.header("x-request-id") ?? crypto.randomUUID();
    c.header("X-Request-Id", requestId);
    await withContext({ requestId }, async () => {
      await next();
    });
  });

  // Ban detectors count responses to inbox POSTs, so they wrap the body limit and the gate.
  if (detectors !== undefined) app.use(detectors.middleware);

  // Limits apply before Fedify reads the body, so an oversized delivery costs no parsing.
  app.post(
    "/ap/*",
    bodyLimit({ maxSize: config.maxInboxBodyBytes, onError: tooLarge(config.maxInboxBodyBytes) }),
  );
  app.use(
    "/api/*",
    bodyLimit({ maxSize: config.maxApiBodyBytes, onError: tooLarge(config.maxApiBodyBytes) }),
  );

  // The policy gate rejects blocked and over-limit senders before any parsing or key fetch.
  app.use(gate.documents);
  app.use(gate.inbox);
  app.use(inboxGuard());
  app.use(federationMiddleware(federation, () => undefined, config.origin));

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  // NOTE: /metrics has no authentication, as Prometheus scrapers expect. Expose the node's port
  // only to the networks that should read it, or restrict the path at the reverse proxy.
  app.get("/metrics", metrics.handler);
  app.get("/", (c) => c.html(renderLandingPage(config, c.req.header("accept-language"))));
  app.route("/api/v1", createApiRoutes(services));

  app.notFound((c) =>
    errorResponse(
      c,
      404,
      "not_found",
      `No route for ${c.req.method} ${new URL(c.req.url).pathname}`,
    ),
  );
  app.onError((error, c) => {
    if (error instanceof HttpError) {
      return errorResponse(c, error.status, error.code, error.message, error.details);
    }
    logger.error("Request {method} {path} failed: {error}", {
      method: c.req.method,
      path: new URL(c.req.url).pathname,
      error,
    });
    return errorResponse(c, 500, "internal_error", "Internal error; see the node log for details");
  });
  return app;
}
