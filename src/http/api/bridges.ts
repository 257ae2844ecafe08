/**
 * Admin routes of MQTT bridges: request a bridge from another instance, list and inspect bridges
 * with their history, end a bridge, and read the state of the last broker reconciliation.
 * Broker passwords never leave the node through the API.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { readReconciliation } from "../../bridges/reconciler.ts";
import {
  type BridgeWithRoutes,
  bridgeHistory,
  findBridge,
  listBridges,
} from "../../bridges/store.ts";
import { BRIDGE_EVENT_TYPES, BRIDGE_ROLES, BRIDGE_STATES } from "../../db/schema/index.ts";
import { BridgeRequestError, FederationLookupError } from "../../federation-port.ts";
import { getNodeLogger } from "../../logging.ts";
import { activeBannedTopics } from "../../policy/bans-queries.ts";
import type { NodeServices } from "../../services.ts";
import { HttpError } from "../errors.ts";
import { canonicalQueryDomain } from "./fields.ts";
import {
  adminRoute,
  errorResponses,
  invalidCursorError,
  jsonBody,
  jsonResponse,
  loadPage,
} from "./routing.ts";
import { IdParamsSchema, PageQuerySchema, pageOf } from "./schemas.ts";

const logger = getNodeLogger("http", "api");

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TimestampSchema = z.string().openapi({ format: "date-time" });

const BridgeRouteSchema = z.object({
  unitNodeId: z.string(),
  topic: z.string().openapi({ description: "`<origin domain>/<unit node id>` on both brokers" }),
  qos: z.number().int(),
  maxMps: z.number().int().openapi({ description: "Agreed limit in messages per second" }),
  inputUnitNodeId: z.string().nullable(),
  banned: z.boolean().openapi({
    description: "True while a topic ban is active; the broker does not carry the route then",
  }),
});

const BridgeSchema = z
  .object({
    id: z.string(),
    role: z.enum(BRIDGE_ROLES),
    state: z.enum(BRIDGE_STATES),
    peerHost: z.string(),
    originDomain: z.string(),
    offerIri: z.string(),
    brokerUrl: z.string().nullable().openapi({ description: "Set on accepted imported bridges" }),
    brokerUsername: z.string().nullable(),
    endReason: z.string().nullable(),
    peerSuspended: z.boolean().openapi({
      description:
        "True while a domain rule or ban suspends the peer; the broker carries none of the routes then",
    }),
    routes: z.array(BridgeRouteSchema),
    createdAt: TimestampSchema,
    updatedAt: TimestampSchema,
  })
  .openapi("Bridge");

const BridgeRequestSchema = z
  .strictObject({
    peer: z.url({ error: "expected the peer node's origin, such as https://node.example.com" }),
    routes: z
      .array(
        z.strictObject({
          unitNodeId: z.guid("expected the UUID of an Output UnitNode of the peer"),
          qos: z.union([z.literal(0), z.literal(1)], { error: "expected 0 or 1" }).default(1),
          maxMps: z
            .number()
            .int("expected a whole number of messages per second")
            .min(1)
            .max(1_000_000)
            .optional()
            .openapi({ description: "Default PU_NODE_BRIDGE_MAX_MPS" }),
          inputUnitNodeId: z.guid("expected the UUID of a local Input UnitNode").optional(),
        }),
      )
      .min(1, "expected at least one route")
      .max(100, "expected at most 100 routes"),
  })
  .openapi("BridgeRequest");

const BridgeEndSchema = z
  .strictObject({
    reason: z.string().trim().min(1, "expected a reason").max(1000),
  })
  .openapi("BridgeEnd");

const BridgeListQuerySchema = PageQuerySchema.extend({
  state: z.enum(BRIDGE_STATES).optional(),
  role: z.enum(BRIDGE_ROLES).optional(),
  peerHost: z.string().min(1).max(1000).optional(),
});

const BridgeEventSchema = z
  .object({
    id: z.number().int(),
    type: z.enum(BRIDGE_EVENT_TYPES),
    actor: z.string(),
    detail: z.record(z.string(), z.unknown()).nullable(),
    createdAt: TimestampSchema,
  })
  .openapi("BridgeEvent");

const ReconciliationSchema = z
  .object({
    driver: z.string(),
    appliedStateHash: z.string().nullable(),
    lastAttemptAt: TimestampSchema.nullable(),
    lastSuccessAt: TimestampSchema.nullable(),
    lastError: z.string().nullable(),
  })
  .openapi("BridgeReconciliation");

/** The policy state of bridges now: the banned topics and which peers are suspended. */
interface BridgePolicyView {
  bannedTopics: ReadonlySet<string>;
  isSuspended: (host: string) => boolean;
}

function bridgeJson(bridge: BridgeWithRoutes, view: BridgePolicyView) {
  return {
    id: bridge.id,
    role: bridge.role,
    state: bridge.state,
    peerHost: bridge.peerHost,
    originDomain: bridge.originDomain,
    offerIri: bridge.offerIri,
    brokerUrl: bridge.brokerUrl,
    brokerUsername: bridge.brokerUsername,
    endReason: bridge.endReason,
    peerSuspended: view.isSuspended(bridge.peerHost),
    routes: bridge.routes.map((route) => ({
      unitNodeId: route.unitNodeId,
      topic: route.topic,
      qos: route.qos,
      maxMps: route.maxMps,
      inputUnitNodeId: route.inputUnitNodeId,
      banned: view.bannedTopics.has(route.topic),
    })),
    createdAt: bridge.createdAt.toISOString(),
    updatedAt: bridge.updatedAt.toISOString(),
  };
}

function bridgeNotFound(id: string): HttpError {
  return new HttpError(404, "bridge_not_found", `Bridge ${id} not found`);
}

export function registerBridgeRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db, federation, config, policy } = services;

  async function policyView(): Promise<BridgePolicyView> {
    const now = new Date();
    return {
      bannedTopics: await activeBannedTopics(db, now),
      isSuspended: (host) => policy.decide(host, now).action === "suspend",
    };
  }

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/bridges",
      tags: ["Bridges"],
      summary: "Ask another instance to export Output UnitNodes to this instance's broker",
      request: { body: jsonBody(BridgeRequestSchema) },
      responses: {
        202: jsonResponse(BridgeSchema, "Offer sent; the state turns active when the peer accepts"),
        ...errorResponses(400, 401, 403, 422, 502),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const routes = body.routes.map((route) => ({
        unitNodeId: route.unitNodeId.toLowerCase(),
        qos: route.qos,
        maxMps: route.maxMps ?? config.bridgeMaxMps,
        inputUnitNodeId: route.inputUnitNodeId?.toLowerCase() ?? null,
      }));
      try {
        const bridge = await federation.requestBridge(new URL(body.peer), routes);
        return c.json(bridgeJson(bridge, await policyView()), 202);
      } catch (error) {
        if (error instanceof BridgeRequestError) {
          throw new HttpError(422, "bridge_request_invalid", error.message);
        }
        if (error instanceof FederationLookupError) {
          logger.warn("Bridge request to {target} failed: {error}", {
            target: body.peer,
            error,
          });
          throw new HttpError(502, "federation_lookup_failed", error.message, {
            target: error.target,
          });
        }
        throw error;
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/bridges",
      tags: ["Bridges"],
      summary: "List bridges, in either direction",
      request: { query: BridgeListQuerySchema },
      responses: {
        200: jsonResponse(pageOf(BridgeSchema, "BridgePage"), "A page of bridges"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const peerHost =
        query.peerHost === undefined ? undefined : canonicalQueryDomain(query.peerHost, "peerHost");
      const view = await policyView();
      const body = await loadPage(c, query, {
        load: (page) => {
          if (page.after !== undefined && !UUID.test(page.after)) {
            throw invalidCursorError();
          }
          return listBridges(db, {
            state: query.state,
            role: query.role,
            peerHost,
            after: page.after,
            limit: page.limit,
          });
        },
        keyOf: (bridge) => bridge.id,
        toItem: (bridge) => bridgeJson(bridge, view),
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/bridges/reconciliation",
      tags: ["Bridges"],
      summary: "The last reconciliation of the local broker with the agreed bridges",
      responses: {
        200: jsonResponse(ReconciliationSchema, "Driver, last attempt, last success and error"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const row = await readReconciliation(db);
      if (!row) {
        throw new HttpError(
          404,
          "reconciliation_not_found",
          `No reconciliation has run yet; the bridge driver is ${config.bridgeDriver}`,
        );
      }
      return c.json(
        {
          driver: row.driver,
          appliedStateHash: row.appliedStateHash,
          lastAttemptAt: row.lastAttemptAt?.toISOString() ?? null,
          lastSuccessAt: row.lastSuccessAt?.toISOString() ?? null,
          lastError: row.lastError,
        },
        200,
      );
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/bridges/{id}",
      tags: ["Bridges"],
      summary: "One bridge with its routes",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(BridgeSchema, "The bridge"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const bridge = await findBridge(db, { id: id.toLowerCase() });
      if (!bridge) throw bridgeNotFound(id);
      return c.json(bridgeJson(bridge, await policyView()), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/bridges/{id}/history",
      tags: ["Bridges"],
      summary: "Agreement steps and broker changes of one bridge, oldest first",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(z.object({ items: z.array(BridgeEventSchema) }), "The events"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const events = await bridgeHistory(db, id.toLowerCase());
      if (events.length === 0 && !(await findBridge(db, { id: id.toLowerCase() }))) {
        throw bridgeNotFound(id);
      }
      return c.json(
        {
          items: events.map((event) => ({
            id: event.id,
            type: event.type,
            actor: event.actor,
            detail: event.detail,
            createdAt: event.createdAt.toISOString(),
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/bridges/{id}/end",
      tags: ["Bridges"],
      summary: "End a bridge: Undo of the Offer as importer, Reject as exporter",
      request: { params: IdParamsSchema, body: jsonBody(BridgeEndSchema) },
      responses: {
        200: jsonResponse(BridgeSchema, "The ended bridge"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      const before = await findBridge(db, { id: id.toLowerCase() });
      if (!before) throw bridgeNotFound(id);
      if (before.state === "rejected" || before.state === "cancelled") {
        throw new HttpError(409, "bridge_ended", `Bridge ${id} already ended (${before.state})`);
      }
      const ended = await federation.endBridge(before.id, reason);
      if (!ended) throw bridgeNotFound(id);
      return c.json(bridgeJson(ended, await policyView()), 200);
    },
  );
}
