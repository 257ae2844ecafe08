/**
 * MQTT bridge agreements over ActivityPub (see docs/bridges.md):
 *
 * 1. The importer sends `Offer` to the exporter's instance actor, listing the exporter's Output
 *    UnitNodes it wants, each with QoS and a maximum rate (`pepeunit:bridgeRoute`).
 * 2. The exporter responds with `Accept`, carrying the broker address, the credentials for this
 *    bridge and the terms it agreed to, or with `Reject` and a reason. A later `Reject` withdraws an accepted
 *    bridge.
 * 3. The importer ends a bridge with `Undo` of its Offer.
 *
 * These activities are addressed only to the other instance actor and are never published in
 * an outbox, because the Accept carries the broker password.
 */
import type { Context, InboxContext } from "@fedify/fedify";
import { Accept, type Actor, Offer, Reject, Undo } from "@fedify/vocab";
import { and, eq } from "drizzle-orm";
import { z } from "zod";
import {
  type BridgeWithRoutes,
  describeBridgedUnitNodes,
  exportUsername,
  findBridge,
  findBridgedUnitNodes,
  findExportableOutputs,
  generateBrokerPassword,
  insertBridge,
  type RouteTerms,
  transitionBridge,
} from "../src/bridges/store.ts";
import type { Config } from "../src/config.ts";
import type { Database } from "../src/db/client.ts";
import { federatedUnits, remoteActors } from "../src/db/schema/index.ts";
import type { BridgeRequestRoute } from "../src/federation-port.ts";
import { getNodeLogger } from "../src/logging.ts";
import { canonicalHost } from "../src/policy/domain.ts";
import { guardedLoaders, sendActivityToAllowed } from "../src/policy/outbound.ts";
import type { PolicyEngine } from "../src/policy/types.ts";
import { claimActivity } from "./inbox/context.ts";
import { INSTANCE_ACTOR } from "./paths.ts";
import { upsertRemoteActor } from "./remote-actors.ts";
import { PROPERTY, property, readProperties } from "./wire.ts";

const logger = getNodeLogger("bridges", "agreement");

export const BRIDGE_PROPERTY = {
  id: "pepeunit:id",
  kind: "pepeunit:kind",
  domain: "pepeunit:domain",
  route: "pepeunit:bridgeRoute",
  brokerUrl: "pepeunit:brokerUrl",
  brokerUsername: "pepeunit:brokerUsername",
  brokerPassword: "pepeunit:brokerPassword",
} as const;

export const BRIDGE_KIND = "bridge";

/** Maximum number of routes in one Offer. */
export const MAX_BRIDGE_ROUTES = 100;

const wireRouteSchema = z.strictObject({
  unitNode: z.uuid(),
  qos: z.union([z.literal(0), z.literal(1)]),
  maxMps: z.number().int().min(1).max(1_000_000),
});

type WireRoute = z.infer<typeof wireRouteSchema>;

function encodeRoute(route: RouteTerms): string {
  const wire: WireRoute = { unitNode: route.unitNodeId, qos: route.qos, maxMps: route.maxMps };
  return JSON.stringify(wire);
}

/** Parses `pepeunit:bridgeRoute` values; returns an error text for the first invalid one. */
function decodeRoutes(values: readonly string[]): RouteTerms[] | string {
  if (values.length === 0) return "the Offer has no pepeunit:bridgeRoute";
  if (values.length > MAX_BRIDGE_ROUTES)
    return `the Offer has ${values.length} routes; at most ${MAX_BRIDGE_ROUTES} are accepted`;
  const routes: RouteTerms[] = [];
  const seen = new Set<string>();
  for (const value of values) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return `route ${JSON.stringify(value.slice(0, 100))} is not JSON`;
    }
    const result = wireRouteSchema.safeParse(parsed);
    if (!result.success) return `route ${JSON.stringify(value.slice(0, 200))} is invalid`;
    if (seen.has(result.data.unitNode)) return `UnitNode ${result.data.unitNode} is listed twice`;
    seen.add(result.data.unitNode);
    routes.push({
      unitNodeId: result.data.unitNode,
      qos: result.data.qos,
      maxMps: result.data.maxMps,
    });
  }
  return routes;
}

function first(properties: Map<string, string[]>, name: string): string | undefined {
  return properties.get(name)?.[0];
}

export interface BridgeDependencies {
  db: Database;
  config: Config;
  policy: PolicyEngine;
}

function instanceUri(ctx: Context<void>): URL {
  return ctx.getActorUri(INSTANCE_ACTOR);
}

/** Reads the peer's Pepeunit domain from its instance actor; undefined when it is no node. */
export async function readPeerDomain(actor: Actor): Promise<string | undefined> {
  const properties = await readProperties(actor);
  if (first(properties, PROPERTY.kind) !== "instance") return undefined;
  const domain = first(properties, PROPERTY.domain);
  if (!domain) return undefined;
  try {
    return canonicalHost(domain) === domain ? domain : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Importer side: request and cancel.

/** Returns the requested UnitNodes that the federated catalogue does not list as Outputs of the peer. */
export async function findUnknownOutputs(
  db: Database,
  originHost: string,
  unitNodeIds: readonly string[],
): Promise<string[]> {
  const rows = await db
    .select({ nodes: federatedUnits.nodes })
    .from(federatedUnits)
    .where(eq(federatedUnits.originHost, originHost));
  const outputs = new Set<string>();
  for (const row of rows) {
    for (const node of row.nodes) if (node.type === "Output") outputs.add(node.id);
  }
  return unitNodeIds.filter((id) => !outputs.has(id));
}

/** Stores the request and sends the Offer; the caller has checked the policy and the routes. */
export async function sendBridgeOffer(
  deps: BridgeDependencies,
  ctx: Context<void>,
  peer: Actor,
  peerDomain: string,
  routes: readonly BridgeRequestRoute[],
): Promise<BridgeWithRoutes> {
  if (!peer.id || !peer.inboxId) throw new Error("The peer actor has no id or inbox");
  const bridgeId = crypto.randomUUID();
  const offerId = new URL(`/ap/bridges/${bridgeId}`, deps.config.origin);
  const peerId = peer.id;
  await deps.db.transaction(async (tx) => {
    const remote = await upsertRemoteActor(tx, peer);
    await insertBridge(
      tx,
      {
        id: bridgeId,
        role: "importer",
        remoteActorId: remote.id,
        peerHost: canonicalHost(peerId.host),
        originDomain: peerDomain,
        offerIri: offerId.href,
        state: "requested",
        routes: routes.map((route) => ({ ...route })),
      },
      "admin",
    );
  });
  await sendActivityToAllowed(
    ctx,
    deps.policy,
    { identifier: INSTANCE_ACTOR },
    peer,
    new Offer({
      id: offerId,
      actor: instanceUri(ctx),
      to: peerId,
      object: peerId,
      attachments: [
        property(BRIDGE_PROPERTY.kind, BRIDGE_KIND),
        property(BRIDGE_PROPERTY.id, bridgeId),
        property(BRIDGE_PROPERTY.domain, deps.config.pepeunitDomain),
        ...routes.map((route) => property(BRIDGE_PROPERTY.route, encodeRoute(route))),
      ],
    }),
  );
  logger.info("Sent bridge Offer {bridgeId} to {peer} for {count} route(s)", {
    bridgeId,
    peer: peerId.href,
    count: routes.length,
  });
  const stored = await findBridge(deps.db, { id: bridgeId });
  if (!stored) throw new Error(`Bridge ${bridgeId} vanished after it was stored`);
  return stored;
}

async function recipientOf(deps: BridgeDependencies, bridge: BridgeWithRoutes) {
  const [actor] = await deps.db
    .select()
    .from(remoteActors)
    .where(eq(remoteActors.id, bridge.remoteActorId));
  if (!actor) throw new Error(`Bridge ${bridge.id} has no stored peer actor`);
  return {
    id: new URL(actor.iri),
    inboxId: new URL(actor.inboxUrl),
    endpoints: null,
  };
}

/**
 * Ends a bridge from this side: the importer sends Undo of its Offer, the exporter a Reject.
 * Returns the updated bridge, or undefined when it had already ended.
 */
export async function endBridge(
  deps: BridgeDependencies,
  ctx: Context<void>,
  bridge: BridgeWithRoutes,
  reason: string,
  actor: string,
): Promise<BridgeWithRoutes | undefined> {
  const to = bridge.role === "importer" ? "cancelled" : "rejected";
  const updated = await transitionBridge(deps.db, bridge.id, ["requested", "active"], to, {
    actor,
    event: to,
    reason,
  });
  if (!updated) return undefined;
  const recipient = await recipientOf(deps, bridge);
  const offer = new Offer({
    id: new URL(bridge.offerIri),
    actor: bridge.role === "importer" ? instanceUri(ctx) : recipient.id,
    object: bridge.role === "importer" ? recipient.id : instanceUri(ctx),
  });
  const activity =
    bridge.role === "importer"
      ? new Undo({
          id: new URL(`/ap/bridges/${bridge.id}/undo/${crypto.randomUUID()}`, deps.config.origin),
          actor: instanceUri(ctx),
          object: offer,
          summary: reason,
        })
      : new Reject({
          id: new URL(`/ap/bridges/${bridge.id}/reject/${crypto.randomUUID()}`, deps.config.origin),
          actor: instanceUri(ctx),
          object: offer,
          summary: reason,
        });
  await sendActivityToAllowed(
    ctx,
    deps.policy,
    { identifier: INSTANCE_ACTOR },
    recipient,
    activity,
  );
  logger.info("Ended bridge {bridgeId} with {peer}: {reason}", {
    bridgeId: bridge.id,
    peer: recipient.id.href,
    reason,
  });
  return await findBridge(deps.db, { id: bridge.id });
}

// ---------------------------------------------------------------------------------------------
// Exporter side: Offer and Undo(Offer).

async function rejectOffer(
  deps: BridgeDependencies,
  ctx: InboxContext<void>,
  offer: Offer,
  sender: Actor,
  reason: string,
): Promise<void> {
  logger.info("Rejected bridge Offer {offerId} from {actor}: {reason}", {
    offerId: offer.id?.href,
    actor: sender.id?.href,
    reason,
  });
  await sendActivityToAllowed(
    ctx,
    deps.policy,
    { identifier: INSTANCE_ACTOR },
    sender,
    new Reject({
      id: new URL(`/ap/bridges/rejections/${crypto.randomUUID()}`, deps.config.origin),
      actor: instanceUri(ctx),
      object: offer.id,
      summary: reason,
    }),
  );
}

/** Returns whether `offer` is a bridge Offer; other Offers are not the node's business. */
export async function isBridgeOffer(offer: Offer): Promise<boolean> {
  const properties = await readProperties(offer);
  return first(properties, BRIDGE_PROPERTY.kind) === BRIDGE_KIND;
}

export async function onBridgeOffer(
  deps: BridgeDependencies,
  ctx: InboxContext<void>,
  offer: Offer,
): Promise<void> {
  if (!offer.id || !offer.actorId || !(await isBridgeOffer(offer))) {
    logger.debug("Ignored an Offer that is not a bridge Offer");
    return;
  }
  const offerId = offer.id;
  const sender = await offer.getActor(guardedLoaders(ctx, deps.policy));
  if (!sender?.id || !sender.inboxId || sender.id.href !== offer.actorId.href) {
    logger.info("Ignored bridge Offer {offerId}: its actor cannot be fetched", {
      offerId: offerId.href,
    });
    return;
  }
  if (offerId.origin !== sender.id.origin) {
    logger.info("Ignored bridge Offer {offerId}: its id is not on its actor's server", {
      offerId: offerId.href,
    });
    return;
  }
  const decision = deps.policy.decide(sender.id.host);
  if (decision.action !== "allow") {
    await rejectOffer(
      deps,
      ctx,
      offer,
      sender,
      `bridges with your domain are refused: ${decision.reason}`,
    );
    return;
  }
  const brokerUrl = deps.config.bridgeBrokerUrl;
  if (!brokerUrl) {
    await rejectOffer(deps, ctx, offer, sender, "this instance does not export MQTT bridges");
    return;
  }

  const properties = await readProperties(offer);
  const bridgeId = first(properties, BRIDGE_PROPERTY.id);
  if (!bridgeId || !z.uuid().safeParse(bridgeId).success) {
    await rejectOffer(deps, ctx, offer, sender, "the Offer has no valid pepeunit:id");
    return;
  }
  const decoded = decodeRoutes(properties.get(BRIDGE_PROPERTY.route) ?? []);
  if (typeof decoded === "string") {
    await rejectOffer(deps, ctx, offer, sender, decoded);
    return;
  }
  const exportable = await findExportableOutputs(
    deps.db,
    decoded.map((route) => route.unitNodeId),
  );
  const missing = decoded.filter((route) => !exportable.has(route.unitNodeId));
  if (missing.length > 0) {
    await rejectOffer(
      deps,
      ctx,
      offer,
      sender,
      `not a public Output UnitNode of this instance: ${missing.map((route) => route.unitNodeId).join(", ")}`,
    );
    return;
  }
  const duplicates = await findBridgedUnitNodes(deps.db, {
    role: "exporter",
    peerHost: canonicalHost(sender.id.host),
    unitNodeIds: decoded.map((route) => route.unitNodeId),
  });
  if (duplicates.length > 0) {
    await rejectOffer(
      deps,
      ctx,
      offer,
      sender,
      `already exported to you: ${describeBridgedUnitNodes(duplicates)}`,
    );
    return;
  }
  // The exporter agrees to at most its own limit, and the Accept carries the agreed limits.
  const agreed = decoded.map((route) => ({
    ...route,
    maxMps: Math.min(route.maxMps, deps.config.bridgeMaxMps),
  }));

  const password = generateBrokerPassword();
  const username = exportUsername(bridgeId);
  const senderId = sender.id;
  const stored = await deps.db.transaction(async (tx) => {
    if (!(await claimActivity(tx, offerId.href, senderId.href, "Offer"))) return "duplicate";
    const remote = await upsertRemoteActor(tx, sender);
    const inserted = await insertBridge(
      tx,
      {
        id: bridgeId,
        role: "exporter",
        remoteActorId: remote.id,
        peerHost: canonicalHost(senderId.host),
        originDomain: deps.config.pepeunitDomain,
        offerIri: offerId.href,
        state: "active",
        routes: agreed,
        brokerUsername: username,
        brokerPassword: password,
      },
      "peer",
    );
    return inserted ? "stored" : "conflict";
  });
  if (stored === "duplicate") {
    logger.debug("Bridge Offer {offerId} was already processed", { offerId: offerId.href });
    return;
  }
  if (stored === "conflict") {
    await rejectOffer(deps, ctx, offer, sender, `bridge id ${bridgeId} is already in use`);
    return;
  }

  await sendActivityToAllowed(
    ctx,
    deps.policy,
    { identifier: INSTANCE_ACTOR },
    sender,
    new Accept({
      id: new URL(`/ap/bridges/${bridgeId}/accept`, deps.config.origin),
      actor: instanceUri(ctx),
      to: senderId,
      object: offerId,
      attachments: [
        property(BRIDGE_PROPERTY.kind, BRIDGE_KIND),
        property(BRIDGE_PROPERTY.id, bridgeId),
        property(BRIDGE_PROPERTY.brokerUrl, brokerUrl.href),
        property(BRIDGE_PROPERTY.brokerUsername, username),
        property(BRIDGE_PROPERTY.brokerPassword, password),
        ...agreed.map((route) => property(BRIDGE_PROPERTY.route, encodeRoute(route))),
      ],
    }),
  );
  logger.info("Accepted bridge {bridgeId} from {peer} for {count} route(s)", {
    bridgeId,
    peer: senderId.href,
    count: agreed.length,
  });
}

/** Finds the bridge a response refers to and checks that the response comes from its peer. */
async function bridgeOfAnswer(
  deps: BridgeDependencies,
  offerIri: string | undefined,
  actorIri: string | undefined,
): Promise<BridgeWithRoutes | undefined> {
  if (!offerIri || !actorIri) return undefined;
  const bridge = await findBridge(deps.db, { offerIri });
  if (!bridge) return undefined;
  const [peer] = await deps.db
    .select({ iri: remoteActors.iri })
    .from(remoteActors)
    .where(and(eq(remoteActors.id, bridge.remoteActorId), eq(remoteActors.iri, actorIri)));
  if (!peer) {
    logger.warning("Ignored a response to bridge {bridgeId} from {actor}, which is not its peer", {
      bridgeId: bridge.id,
      actor: actorIri,
    });
    return undefined;
  }
  return bridge;
}

/** Handles Undo(Offer) from an importer. Returns false when the Undo is not about a bridge. */
export async function onBridgeUndo(
  deps: BridgeDependencies,
  undo: Undo,
  offerIri: string | undefined,
): Promise<boolean> {
  const bridge = await bridgeOfAnswer(deps, offerIri, undo.actorId?.href);
  if (bridge?.role !== "exporter") return false;
  const updated = await transitionBridge(deps.db, bridge.id, ["active"], "cancelled", {
    actor: "peer",
    event: "cancelled",
    reason: undo.summary?.toString() ?? "cancelled by the importer",
  });
  logger.info("Bridge {bridgeId} cancelled by {peer} ({changed})", {
    bridgeId: bridge.id,
    peer: undo.actorId?.href,
    changed: updated ? "ended" : "already ended",
  });
  return true;
}

// ---------------------------------------------------------------------------------------------
// Importer side: the exporter's response.

/** Handles an Accept of a bridge Offer. Returns false when the Accept is not about a bridge. */
export async function onBridgeAccept(deps: BridgeDependencies, accept: Accept): Promise<boolean> {
  const bridge = await bridgeOfAnswer(deps, accept.objectId?.href, accept.actorId?.href);
  if (bridge?.role !== "importer") return false;
  const properties = await readProperties(accept);
  const url = first(properties, BRIDGE_PROPERTY.brokerUrl);
  const username = first(properties, BRIDGE_PROPERTY.brokerUsername);
  const password = first(properties, BRIDGE_PROPERTY.brokerPassword);
  const routes = decodeRoutes(properties.get(BRIDGE_PROPERTY.route) ?? []);
  const problem = !url
    ? "no pepeunit:brokerUrl"
    : !isBrokerUrl(url)
      ? `pepeunit:brokerUrl ${JSON.stringify(url)} is not an mqtt:// or mqtts:// URL`
      : !username || !password
        ? "no broker credentials"
        : typeof routes === "string"
          ? routes
          : routes.some(
                (route) => !bridge.routes.some((own) => own.unitNodeId === route.unitNodeId),
              )
            ? "the Accept lists a route that was not requested"
            : undefined;
  if (problem || !url || !username || !password || typeof routes === "string") {
    logger.warning("Ignored the Accept of bridge {bridgeId}: {problem}", {
      bridgeId: bridge.id,
      problem,
    });
    return true;
  }
  // Routes the exporter left out of its Accept are not carried; limits are the agreed ones.
  const agreed = bridge.routes.map((own) => {
    const answer = routes.find((route) => route.unitNodeId === own.unitNodeId);
    return {
      unitNodeId: own.unitNodeId,
      qos: (answer?.qos ?? own.qos) as 0 | 1,
      maxMps: Math.min(answer?.maxMps ?? own.maxMps, own.maxMps),
    };
  });
  const updated = await transitionBridge(deps.db, bridge.id, ["requested"], "active", {
    actor: "peer",
    event: "accepted",
    broker: { url, username, password },
    routes: agreed,
  });
  logger.info("Bridge {bridgeId} accepted by {peer} ({changed})", {
    bridgeId: bridge.id,
    peer: accept.actorId?.href,
    changed: updated ? "now active" : "already answered",
  });
  return true;
}

/** Handles a Reject of a bridge Offer. Returns false when the Reject is not about a bridge. */
export async function onBridgeReject(deps: BridgeDependencies, reject: Reject): Promise<boolean> {
  const bridge = await bridgeOfAnswer(deps, reject.objectId?.href, reject.actorId?.href);
  if (bridge?.role !== "importer") return false;
  const reason = reject.summary?.toString() ?? "rejected by the exporter";
  const updated = await transitionBridge(deps.db, bridge.id, ["requested", "active"], "rejected", {
    actor: "peer",
    event: "rejected",
    reason,
  });
  logger.info("Bridge {bridgeId} rejected by {peer}: {reason} ({changed})", {
    bridgeId: bridge.id,
    peer: reject.actorId?.href,
    reason,
    changed: updated ? "ended" : "already ended",
  });
  return true;
}

function isBrokerUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "mqtt:" || url.protocol === "mqtts:") && url.hostname !== "";
  } catch {
    return false;
  }
}
