/**
 * Bridge agreements in PostgreSQL: the importer's requests, the exporter's accepted offers, their
 * routes and history. The ActivityPub exchange lives in `federation/bridges.ts`; this module only
 * reads and writes rows, inside the caller's transaction where one is given.
 */
import { randomBytes } from "node:crypto";
import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  type BridgeEventType,
  type BridgeRole,
  type BridgeRouteRow,
  type BridgeRow,
  type BridgeState,
  bridgeEvents,
  bridgeRoutes,
  bridges,
  repos,
  unitNodes,
  units,
} from "../db/schema/index.ts";
import type { BridgeQos } from "./driver.ts";

export interface RouteTerms {
  unitNodeId: string;
  qos: BridgeQos;
  maxMps: number;
  inputUnitNodeId?: string | null;
}

export interface BridgeWithRoutes extends BridgeRow {
  routes: BridgeRouteRow[];
}

/** Raised when an operation does not fit the bridge's state or role; the API returns 409. */
export class BridgeStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BridgeStateError";
  }
}

export function topicOf(originDomain: string, unitNodeId: string): string {
  return `${originDomain}/${unitNodeId}`;
}

export async function recordBridgeEvent(
  db: DatabaseLike,
  bridgeId: string,
  type: BridgeEventType,
  actor: string,
  detail: Record<string, unknown> | null = null,
): Promise<void> {
  await db.insert(bridgeEvents).values({ bridgeId, type, actor, detail });
}

export interface NewBridge {
  id: string;
  role: BridgeRole;
  remoteActorId: string;
  peerHost: string;
  originDomain: string;
  offerIri: string;
  state: BridgeState;
  routes: RouteTerms[];
  brokerUrl?: string | null;
  brokerUsername?: string | null;
  brokerPassword?: string | null;
}

/** Inserts a bridge with its routes; returns false when a bridge with that id or Offer exists. */
export async function insertBridge(
  db: DatabaseLike,
  bridge: NewBridge,
  actor: string,
): Promise<boolean> {
  const inserted = await db
    .insert(bridges)
    .values({
      id: bridge.id,
      role: bridge.role,
      remoteActorId: bridge.remoteActorId,
      peerHost: bridge.peerHost,
      originDomain: bridge.originDomain,
      offerIri: bridge.offerIri,
      state: bridge.state,
      brokerUrl: bridge.brokerUrl ?? null,
      brokerUsername: bridge.brokerUsername ?? null,
      brokerPassword: bridge.brokerPassword ?? null,
    })
    .onConflictDoNothing()
    .returning({ id: bridges.id });
  if (inserted.length === 0) return false;
  await db.insert(bridgeRoutes).values(
    bridge.routes.map((route) => ({
      bridgeId: bridge.id,
      unitNodeId: route.unitNodeId,
      topic: topicOf(bridge.originDomain, route.unitNodeId),
      qos: route.qos,
      maxMps: route.maxMps,
      inputUnitNodeId: route.inputUnitNodeId ?? null,
    })),
  );
  await recordBridgeEvent(
    db,
    bridge.id,
    bridge.role === "importer" ? "requested" : "offered",
    actor,
    { peerHost: bridge.peerHost, routes: bridge.routes },
  );
  return true;
}

export async function findBridge(
  db: DatabaseLike,
  where: { id: string } | { offerIri: string },
): Promise<BridgeWithRoutes | undefined> {
  const condition = "id" in where ? eq(bridges.id, where.id) : eq(bridges.offerIri, where.offerIri);
  const [row] = await db.select().from(bridges).where(condition);
  if (!row) return undefined;
  const routes = await db
    .select()
    .from(bridgeRoutes)
    .where(eq(bridgeRoutes.bridgeId, row.id))
    .orderBy(asc(bridgeRoutes.topic));
  return { ...row, routes };
}

export interface BridgeFilter {
  state?: BridgeState | undefined;
  role?: BridgeRole | undefined;
  peerHost?: string | undefined;
  /** Keyset cursor: the id of the last bridge of the previous page. */
  after?: string | undefined;
  limit: number;
}

/** Bridges in id order, for paging. */
export async function listBridges(
  db: DatabaseLike,
  filter: BridgeFilter,
): Promise<BridgeWithRoutes[]> {
  const rows = await db
    .select()
    .from(bridges)
    .where(
      and(
        filter.state ? eq(bridges.state, filter.state) : undefined,
        filter.role ? eq(bridges.role, filter.role) : undefined,
        filter.peerHost ? eq(bridges.peerHost, filter.peerHost) : undefined,
        filter.after ? gt(bridges.id, filter.after) : undefined,
      ),
    )
    .orderBy(asc(bridges.id))
    .limit(filter.limit);
  return await attachRoutes(db, rows);
}

async function attachRoutes(db: DatabaseLike, rows: BridgeRow[]): Promise<BridgeWithRoutes[]> {
  if (rows.length === 0) return [];
  const routes = await db
    .select()
    .from(bridgeRoutes)
    .where(
      inArray(
        bridgeRoutes.bridgeId,
        rows.map((row) => row.id),
      ),
    )
    .orderBy(asc(bridgeRoutes.topic));
  const byBridge = new Map<string, BridgeRouteRow[]>();
  for (const route of routes) {
    const list = byBridge.get(route.bridgeId) ?? [];
    list.push(route);
    byBridge.set(route.bridgeId, list);
  }
  return rows.map((row) => ({ ...row, routes: byBridge.get(row.id) ?? [] }));
}

/** Returns every active bridge with its routes, for the reconciler and the traffic monitor. */
export async function listActiveBridges(db: DatabaseLike): Promise<BridgeWithRoutes[]> {
  const rows = await db
    .select()
    .from(bridges)
    .where(eq(bridges.state, "active"))
    .orderBy(asc(bridges.id));
  return await attachRoutes(db, rows);
}

export async function bridgeHistory(db: DatabaseLike, bridgeId: string) {
  return await db
    .select()
    .from(bridgeEvents)
    .where(eq(bridgeEvents.bridgeId, bridgeId))
    .orderBy(asc(bridgeEvents.id));
}

/**
 * Moves a bridge from one of `from` to `to`, with credentials when it becomes active. Returns the
 * updated row, or undefined when the bridge was not in one of `from` (a repeated or late response).
 */
export async function transitionBridge(
  db: DatabaseLike,
  bridgeId: string,
  from: readonly BridgeState[],
  to: BridgeState,
  change: {
    actor: string;
    event: BridgeEventType;
    reason?: string | null;
    broker?: { url: string | null; username: string; password: string };
    routes?: RouteTerms[];
  },
): Promise<BridgeRow | undefined> {
  const [row] = await db
    .update(bridges)
    .set({
      state: to,
      endReason: change.reason ?? null,
      updatedAt: sql`now()`,
      ...(change.broker
        ? {
            brokerUrl: change.broker.url,
            brokerUsername: change.broker.username,
            brokerPassword: change.broker.password,
          }
        : {}),
    })
    .where(and(eq(bridges.id, bridgeId), inArray(bridges.state, [...from])))
    .returning();
  if (!row) return undefined;
  if (change.routes) {
    // The exporter may lower a requested limit; the accepted terms replace the requested ones.
    for (const route of change.routes) {
      await db
        .update(bridgeRoutes)
        .set({ qos: route.qos, maxMps: route.maxMps })
        .where(
          and(eq(bridgeRoutes.bridgeId, bridgeId), eq(bridgeRoutes.unitNodeId, route.unitNodeId)),
        );
    }
  }
  await recordBridgeEvent(db, bridgeId, change.event, change.actor, {
    ...(change.reason ? { reason: change.reason } : {}),
    ...(change.routes ? { routes: change.routes } : {}),
  });
  return row;
}

/** Local Output UnitNodes that may be exported: the node, its Unit and its Repo are Public. */
export async function findExportableOutputs(
  db: DatabaseLike,
  unitNodeIds: readonly string[],
): Promise<Set<string>> {
  if (unitNodeIds.length === 0) return new Set();
  const rows = await db
    .select({ id: unitNodes.id })
    .from(unitNodes)
    .innerJoin(units, eq(units.id, unitNodes.unitId))
    .innerJoin(repos, eq(repos.id, units.repoId))
    .where(
      and(
        inArray(unitNodes.id, [...unitNodeIds]),
        eq(unitNodes.type, "Output"),
        eq(unitNodes.visibility, "Public"),
        eq(units.visibility, "Public"),
        eq(repos.visibility, "Public"),
      ),
    );
  return new Set(rows.map((row) => row.id));
}

/** Generates a password for a bridge's broker account: 32 random bytes, base64url. */
export function generateBrokerPassword(): string {
  return randomBytes(32).toString("base64url");
}

/** Returns the broker username of an exported bridge, stable so a reconciliation finds it again. */
export function exportUsername(bridgeId: string): string {
  return `pepeunit-node-bridge-${bridgeId}`;
}

/**
 * Returns the UnitNodes among `unitNodeIds` that a bridge in `requested` or `active` state with
 * the same peer and role already carries, with that bridge's id. A second bridge for a topic
 * would deliver each message twice and double its measured rate.
 */
export async function findBridgedUnitNodes(
  db: DatabaseLike,
  filter: { role: BridgeRole; peerHost: string; unitNodeIds: readonly string[] },
): Promise<{ unitNodeId: string; bridgeId: string }[]> {
  if (filter.unitNodeIds.length === 0) return [];
  return await db
    .select({ unitNodeId: bridgeRoutes.unitNodeId, bridgeId: bridges.id })
    .from(bridgeRoutes)
    .innerJoin(bridges, eq(bridges.id, bridgeRoutes.bridgeId))
    .where(
      and(
        eq(bridges.role, filter.role),
        eq(bridges.peerHost, filter.peerHost),
        inArray(bridges.state, ["requested", "active"]),
        inArray(bridgeRoutes.unitNodeId, [...filter.unitNodeIds]),
      ),
    );
}

/** Formats what {@link findBridgedUnitNodes} found as `<unit node> (bridge <id>)` list text. */
export function describeBridgedUnitNodes(
  entries: readonly { unitNodeId: string; bridgeId: string }[],
): string {
  return entries.map((entry) => `${entry.unitNodeId} (bridge ${entry.bridgeId})`).join(", ");
}
