/** Admin routes for instance follows and the list of known peers. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { asc, eq, gt, sql } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { DatabaseLike } from "../../db/client.ts";
import {
  type FollowState,
  inboundFollows,
  outboundFollows,
  remoteActors,
} from "../../db/schema/index.ts";
import { FederationLookupError } from "../../federation-port.ts";
import { getNodeLogger } from "../../logging.ts";
import type { NodeServices } from "../../services.ts";
import { HttpError } from "../errors.ts";
import { adminRoute, errorResponses, jsonBody, jsonResponse, loadPage } from "./routing.ts";
import {
  FollowBodySchema,
  FollowedInstanceSchema,
  PageQuerySchema,
  PeerSchema,
  pageOf,
} from "./schemas.ts";

const logger = getNodeLogger("http", "api");

/** The actor identifier of this node's instance actor in `inbound_follows`. */
const INSTANCE_ACTOR_IDENTIFIER = "instance";

export interface PeerRow {
  id: string;
  iri: string;
  host: string;
  type: string;
  name: string | null;
  isPepeunitNode: boolean;
  outboundState: FollowState | null;
  outboundUpdatedAt: Date | null;
  followsInstance: boolean;
  followedRepoCount: number;
}

/** Lists remote actors by IRI with this node's follow of each and each one's follows of this node. */
export async function listPeers(
  db: DatabaseLike,
  page: { limit: number; after?: string | undefined },
): Promise<PeerRow[]> {
  // One grouped pass over inbound_follows joined once, instead of a subquery per actor.
  const inbound = db
    .select({
      remoteActorId: inboundFollows.remoteActorId,
      followsInstance:
        sql<boolean>`bool_or(${inboundFollows.actorIdentifier} = ${INSTANCE_ACTOR_IDENTIFIER})`.as(
          "follows_instance",
        ),
      followedRepoCount:
        sql<number>`(count(*) filter (where ${inboundFollows.actorIdentifier} <> ${INSTANCE_ACTOR_IDENTIFIER}))::int`.as(
          "followed_repo_count",
        ),
    })
    .from(inboundFollows)
    .groupBy(inboundFollows.remoteActorId)
    .as("inbound");

  return await db
    .select({
      id: remoteActors.id,
      iri: remoteActors.iri,
      host: remoteActors.host,
      type: remoteActors.type,
      name: remoteActors.name,
      isPepeunitNode: remoteActors.isPepeunitNode,
      outboundState: outboundFollows.state,
      outboundUpdatedAt: outboundFollows.updatedAt,
      followsInstance: sql<boolean>`coalesce(${inbound.followsInstance}, false)`,
      followedRepoCount: sql<number>`coalesce(${inbound.followedRepoCount}, 0)`,
    })
    .from(remoteActors)
    .leftJoin(outboundFollows, eq(outboundFollows.remoteActorId, remoteActors.id))
    .leftJoin(inbound, eq(inbound.remoteActorId, remoteActors.id))
    .where(page.after === undefined ? undefined : gt(remoteActors.iri, page.after))
    .orderBy(asc(remoteActors.iri))
    .limit(page.limit);
}

function peerJson(row: PeerRow) {
  return {
    id: row.id,
    iri: row.iri,
    host: row.host,
    type: row.type,
    name: row.name,
    isPepeunitNode: row.isPepeunitNode,
    outbound:
      row.outboundState === null || row.outboundUpdatedAt === null
        ? null
        : { state: row.outboundState, updatedAt: row.outboundUpdatedAt.toISOString() },
    inbound: { followsInstance: row.followsInstance, followedRepoCount: row.followedRepoCount },
  };
}

/**
 * Runs a call to the federation port. A failed actor lookup is passed to `onLookupFailure` for
 * logging and then thrown as a 502 {@link HttpError}. Other errors pass through unchanged.
 */
async function callFederation<T>(
  call: () => Promise<T>,
  onLookupFailure: (error: FederationLookupError) => void,
): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof FederationLookupError)) throw error;
    onLookupFailure(error);
    throw new HttpError(502, "federation_lookup_failed", error.message, { target: error.target });
  }
}

export function registerPeerRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db, federation } = services;

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/instances/follow",
      tags: ["Federation"],
      summary: "Follow another instance: look up its instance actor and send a signed Follow",
      request: { body: jsonBody(FollowBodySchema) },
      responses: {
        202: jsonResponse(
          FollowedInstanceSchema,
          "Follow sent; the state turns accepted when the peer accepts",
        ),
        ...errorResponses(400, 401, 403, 502),
      },
    }),
    async (c) => {
      const { target } = c.req.valid("json");
      const followed = await callFederation(
        () => federation.followInstance(new URL(target)),
        (error) => logger.warn("Follow of {target} failed: {error}", { target, error }),
      );
      logger.info("Followed instance {host} at {actorIri}", { ...followed });
      return c.json(followed, 202);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "delete",
      path: "/instances/follow",
      tags: ["Federation"],
      summary: "Unfollow an instance: send Undo(Follow) and forget the follow",
      request: { body: jsonBody(FollowBodySchema) },
      responses: {
        204: { description: "Unfollowed" },
        ...errorResponses(400, 401, 403, 404, 502),
      },
    }),
    async (c) => {
      const { target } = c.req.valid("json");
      const removed = await callFederation(
        () => federation.unfollowInstance(new URL(target)),
        (error) => logger.warn("Unfollow of {target} failed: {error}", { target, error }),
      );
      if (!removed) {
        throw new HttpError(404, "follow_not_found", `This node does not follow ${target}`);
      }
      logger.info("Unfollowed instance at {target}", { target });
      return c.body(null, 204);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/peers",
      tags: ["Federation"],
      summary: "List known remote actors with the follow state in each direction",
      request: { query: PageQuerySchema },
      responses: {
        200: jsonResponse(pageOf(PeerSchema, "PeerPage"), "A page of peers"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = await loadPage(c, c.req.valid("query"), {
        load: (page) => listPeers(db, page),
        keyOf: (row) => row.iri,
        toItem: peerJson,
      });
      return c.json(body, 200);
    },
  );
}
