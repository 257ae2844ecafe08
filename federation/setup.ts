/**
 * Builds the node's Fedify federation: actors, collections, the Unit object, NodeInfo and the
 * inbox listeners. Fedify is imported only under `federation/`.
 */
import {
  createExponentialBackoffPolicy,
  createFederation,
  type Federation,
  type KvStore,
  type MessageQueue,
} from "@fedify/fedify";
import { Document } from "@fedify/vocab";
import { and, asc, count, eq, gt } from "drizzle-orm";
import type { Config } from "../src/config.ts";
import type { Database } from "../src/db/client.ts";
import { inboundFollows, remoteActors } from "../src/db/schema/index.ts";
import { filterQueuedDeliveries } from "../src/policy/outbound.ts";
import type { PolicyEngine } from "../src/policy/types.ts";
import {
  buildInstanceActor,
  buildRepoActor,
  buildUnitObject,
  findPublicRepo,
  findPublicUnit,
  outboxPage,
} from "./entities.ts";
import { registerInboxListeners } from "./inbox/index.ts";
import { getActorKeyPairs } from "./keys.ts";
import { buildNodeInfo } from "./nodeinfo.ts";
import { INSTANCE_ACTOR, isUuid, PATHS } from "./paths.ts";
import { toDuration } from "./wire.ts";

export interface NodeFederationOptions {
  config: Config;
  db: Database;
  kv: KvStore;
  /** Outgoing deliveries go through this queue; inbound activities are handled synchronously. */
  queue: MessageQueue;
  /** Federation policy; queued deliveries to suspended hosts are dropped when taken. */
  policy: PolicyEngine;
  /** Retry policy of outgoing deliveries; {@link DEFAULT_OUTBOX_RETRY} when omitted. */
  outboxRetry?: OutboxRetry;
}

export type NodeFederation = Federation<void>;

export interface OutboxRetry {
  initialDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
}

/**
 * Fedify's default gives up after 10 attempts (about half an hour of retries). Peers of a
 * Pepeunit federation are small servers that may be down for hours, so the node retries for
 * about a day: delays double from 1 s up to 1 h, over 30 attempts. The periodic outbox resync
 * repairs anything still missed after that.
 */
export const DEFAULT_OUTBOX_RETRY: OutboxRetry = {
  initialDelayMs: 1_000,
  maxDelayMs: 3_600_000,
  maxAttempts: 30,
};

const FOLLOWERS_PAGE_SIZE = 100;

/** Returns whether `identifier` is "instance" or the id of a Public Repo. */
async function actorExists(db: Database, identifier: string): Promise<boolean> {
  if (identifier === INSTANCE_ACTOR) return true;
  return isUuid(identifier) && (await findPublicRepo(db, identifier)) !== undefined;
}

export function createNodeFederation(options: NodeFederationOptions): NodeFederation {
  const { config, db } = options;
  const retry = options.outboxRetry ?? DEFAULT_OUTBOX_RETRY;
  // One wrapper for both queues: a delivery queued before a domain was suspended, or a fan-out
  // to followers on it, is dropped (and logged) when a worker takes it.
  const outbound = filterQueuedDeliveries(options.queue, options.policy);
  const federation = createFederation<void>({
    kv: options.kv,
    queue: { outbox: outbound, fanout: outbound },
    // Only the worker role consumes the queue; it calls startQueue() itself.
    manuallyStartQueue: true,
    origin: config.origin.href,
    allowPrivateAddress: config.allowPrivateAddress,
    userAgent: { software: "pepeunit-node" },
    outboxRetryPolicy: createExponentialBackoffPolicy({
      initialDelay: toDuration(retry.initialDelayMs),
      maxDelay: toDuration(retry.maxDelayMs),
      maxAttempts: retry.maxAttempts,
    }),
  });

  federation
    .setActorDispatcher(PATHS.actor, async (ctx, identifier) => {
      if (identifier === INSTANCE_ACTOR) return await buildInstanceActor(ctx, config);
      if (!isUuid(identifier)) return null;
      const repo = await findPublicRepo(db, identifier);
      return repo ? await buildRepoActor(ctx, repo) : null;
    })
    .mapHandle(async (_ctx, username) => {
      if (username === INSTANCE_ACTOR) return INSTANCE_ACTOR;
      const repo = await db.query.repos.findFirst({
        where: (table, { and: both, eq: equals }) =>
          both(equals(table.name, username), equals(table.visibility, "Public")),
        columns: { id: true },
      });
      return repo?.id ?? null;
    })
    .setKeyPairsDispatcher(async (_ctx, identifier) => {
      if (!(await actorExists(db, identifier))) return [];
      return await getActorKeyPairs(db, identifier);
    });

  federation
    .setFollowersDispatcher(PATHS.followers, async (_ctx, identifier, cursor) => {
      if (cursor === null || !(await actorExists(db, identifier))) return null;
      const rows = await db
        .select({ follow: inboundFollows, actor: remoteActors })
        .from(inboundFollows)
        .innerJoin(remoteActors, eq(remoteActors.id, inboundFollows.remoteActorId))
        .where(
          and(
            eq(inboundFollows.actorIdentifier, identifier),
            cursor === "" ? undefined : gt(inboundFollows.id, cursor),
          ),
        )
        .orderBy(asc(inboundFollows.id))
        .limit(FOLLOWERS_PAGE_SIZE);
      const last = rows.at(-1);
      return {
        items: rows.map(({ actor }) => ({
          id: new URL(actor.iri),
          inboxId: new URL(actor.inboxUrl),
          endpoints: actor.sharedInboxUrl ? { sharedInbox: new URL(actor.sharedInboxUrl) } : null,
        })),
        nextCursor: rows.length === FOLLOWERS_PAGE_SIZE && last ? last.follow.id : null,
      };
    })
    .setFirstCursor(() => "")
    .setCounter(async (_ctx, identifier) => {
      const [row] = await db
        .select({ total: count() })
        .from(inboundFollows)
        .where(eq(inboundFollows.actorIdentifier, identifier));
      return row?.total ?? 0;
    });

  federation
    .setOutboxDispatcher(PATHS.outbox, async (ctx, identifier, cursor) => {
      if (cursor === null || !(await actorExists(db, identifier))) return null;
      return await outboxPage(ctx, db, identifier, cursor);
    })
    .setFirstCursor(() => "");

  federation.setObjectDispatcher(Document, PATHS.unit, async (ctx, values) => {
    if (!isUuid(values.id)) return null;
    const found = await findPublicUnit(db, values.id);
    return found ? buildUnitObject(ctx, found.unit, found.nodes) : null;
  });

  federation.setNodeInfoDispatcher(PATHS.nodeInfo, async () => await buildNodeInfo(db, config));

  registerInboxListeners(federation, { db, config, policy: options.policy });

  return federation;
}
