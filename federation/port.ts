/** The {@link FederationPort} that the REST API uses to follow and unfollow other instances. */
import { Follow, isActor, Undo } from "@fedify/vocab";
import { eq, sql } from "drizzle-orm";
import {
  describeBridgedUnitNodes,
  findBridge,
  findBridgedUnitNodes,
} from "../src/bridges/store.ts";
import type { Config } from "../src/config.ts";
import type { Database } from "../src/db/client.ts";
import { federatedRepos, outboundFollows, remoteActors } from "../src/db/schema/index.ts";
import {
  BridgeRequestError,
  type BridgeRequestRoute,
  FederationLookupError,
  type FederationPort,
  type FollowedInstance,
} from "../src/federation-port.ts";
import { getNodeLogger } from "../src/logging.ts";
import { canonicalHost } from "../src/policy/domain.ts";
import { lookupObjectIfAllowed, sendActivityToAllowed } from "../src/policy/outbound.ts";
import type { PolicyEngine } from "../src/policy/types.ts";
import { endBridge, findUnknownOutputs, readPeerDomain, sendBridgeOffer } from "./bridges.ts";
import { isFollowedHost } from "./inbox/context.ts";
import { hostOf, INSTANCE_ACTOR } from "./paths.ts";
import { upsertRemoteActor } from "./remote-actors.ts";
import type { NodeFederation } from "./setup.ts";

const logger = getNodeLogger("federation", "follows");

/** Returns the actor URL to look up: a bare origin stands for that node's instance actor. */
function actorUrlOf(target: URL): URL {
  if (target.pathname === "/" && !target.search)
    return new URL(`/ap/actors/${INSTANCE_ACTOR}`, target);
  return target;
}

export function createFederationPort(
  federation: NodeFederation,
  db: Database,
  config: Config,
  policy: PolicyEngine,
): FederationPort {
  const origin = config.origin;
  async function lookUpActor(target: URL) {
    if (target.origin === origin.origin) {
      throw new FederationLookupError(target.href, "it is this node itself");
    }
    const decision = policy.decide(target.host);
    if (decision.action === "suspend") {
      throw new FederationLookupError(
        target.href,
        `its domain is suspended (${decision.reason}); lift the domain rule first`,
      );
    }
    const ctx = federation.createContext(origin, undefined);
    const documentLoader = await ctx.getDocumentLoader({ identifier: INSTANCE_ACTOR });
    const actor = await lookupObjectIfAllowed(ctx, policy, actorUrlOf(target), {
      documentLoader,
    }).catch((error: unknown) => {
      throw new FederationLookupError(target.href, `fetching it failed (${String(error)})`);
    });
    if (!isActor(actor) || !actor.id || !actor.inboxId) {
      throw new FederationLookupError(
        target.href,
        "no ActivityPub actor with an inbox answers there; give a node origin such as https://node.example.com or an actor URL",
      );
    }
    return { ctx, actor };
  }

  return {
    async followInstance(target: URL): Promise<FollowedInstance> {
      const { ctx, actor } = await lookUpActor(target);
      const followId = new URL(`/ap/follows/${crypto.randomUUID()}`, origin);
      const row = await db.transaction(async (tx) => {
        const remote = await upsertRemoteActor(tx, actor);
        const [follow] = await tx
          .insert(outboundFollows)
          .values({ remoteActorId: remote.id, followActivityIri: followId.href, state: "pending" })
          .onConflictDoUpdate({
            target: outboundFollows.remoteActorId,
            set: { followActivityIri: followId.href, state: "pending", updatedAt: sql`now()` },
          })
          .returning();
        return { remote, follow };
      });
      await sendActivityToAllowed(
        ctx,
        policy,
        { identifier: INSTANCE_ACTOR },
        actor,
        new Follow({ id: followId, actor: ctx.getActorUri(INSTANCE_ACTOR), object: actor.id }),
      );
      logger.info("Sent Follow {followId} to {actor}", {
        followId: followId.href,
        actor: actor.id?.href,
      });
      return {
        actorIri: row.remote.iri,
        host: row.remote.host,
        state: row.follow?.state ?? "pending",
      };
    },

    async unfollowInstance(target: URL): Promise<boolean> {
      const actorUrl = actorUrlOf(target).href;
      const [existing] = await db
        .select({ follow: outboundFollows, actor: remoteActors })
        .from(outboundFollows)
        .innerJoin(remoteActors, eq(remoteActors.id, outboundFollows.remoteActorId))
        .where(eq(remoteActors.iri, actorUrl));
      if (!existing) return false;
      const ctx = federation.createContext(origin, undefined);
      // The stored inbox is enough; the peer may be down, and the Undo then waits in the queue.
      const recipient = {
        id: new URL(existing.actor.iri),
        inboxId: new URL(existing.actor.inboxUrl),
        endpoints: null,
      };
      await sendActivityToAllowed(
        ctx,
        policy,
        { identifier: INSTANCE_ACTOR },
        recipient,
        new Undo({
          id: new URL(`/ap/undo/${crypto.randomUUID()}`, origin),
          actor: ctx.getActorUri(INSTANCE_ACTOR),
          object: new Follow({
            id: new URL(existing.follow.followActivityIri),
            actor: ctx.getActorUri(INSTANCE_ACTOR),
            object: new URL(existing.actor.iri),
          }),
        }),
      );
      const removed = await db.transaction(async (tx) => {
        await tx.delete(outboundFollows).where(eq(outboundFollows.id, existing.follow.id));
        // Without the follow no updates arrive, so what the peer published would go stale.
        if (await isFollowedHost(tx, existing.actor.host)) return 0;
        const rows = await tx
          .delete(federatedRepos)
          .where(eq(federatedRepos.originHost, existing.actor.host))
          .returning({ iri: federatedRepos.iri });
        return rows.length;
      });
      logger.info("Unfollowed {actor}; removed {count} of its Repos from the catalogue", {
        actor: existing.actor.iri,
        count: removed,
      });
      return true;
    },

    async requestBridge(target: URL, routes: readonly BridgeRequestRoute[]) {
      if (routes.length === 0) throw new BridgeRequestError("A bridge needs at least one route");
      const { ctx, actor } = await lookUpActor(target);
      if (!actor.id) throw new FederationLookupError(target.href, "the actor has no id");

      const peerDomain = await readPeerDomain(actor);
      if (!peerDomain) {
        throw new FederationLookupError(
          target.href,
          "it is not a Pepeunit Node instance actor with a pepeunit:domain; give the node's origin",
        );
      }
      if (peerDomain === config.pepeunitDomain) {
        throw new BridgeRequestError(
          `The peer's Pepeunit domain ${peerDomain} is this instance's own; a bridge carries only foreign topics`,
        );
      }

      const unitNodeIds = routes.map((route) => route.unitNodeId);
      const unknown = await findUnknownOutputs(db, hostOf(actor.id), unitNodeIds);
      if (unknown.length > 0) {
        throw new BridgeRequestError(
          `Not a known Output UnitNode of ${hostOf(actor.id)}: ${unknown.join(", ")}; follow the instance so its public Units are in the catalogue, and pick UnitNodes of type Output`,
        );
      }
      const duplicates = await findBridgedUnitNodes(db, {
        role: "importer",
        peerHost: canonicalHost(actor.id.host),
        unitNodeIds,
      });
      if (duplicates.length > 0) {
        throw new BridgeRequestError(
          `Already bridged: ${describeBridgedUnitNodes(duplicates)}; end that bridge first or leave these UnitNodes out`,
        );
      }

      return await sendBridgeOffer({ db, config, policy }, ctx, actor, peerDomain, routes);
    },

    async endBridge(bridgeId: string, reason: string) {
      const bridge = await findBridge(db, { id: bridgeId });
      if (!bridge) return undefined;
      const ctx = federation.createContext(origin, undefined);
      const ended = await endBridge({ db, config, policy }, ctx, bridge, reason, "admin");
      return ended ?? bridge;
    },
  };
}
