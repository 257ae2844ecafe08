/**
 * Backfill and resync: after a peer accepts our Follow, and again every resync interval, read
 * its outbox (one Create per public Repo and Unit) into the federated catalogue. Entities
 * published before the Follow are found this way, and a full read also removes what the peer
 * no longer lists, which repairs deliveries lost while either side was down for long.
 */
import { Collection, Create } from "@fedify/vocab";
import { and, eq, isNull, lt, or, sql } from "drizzle-orm";
import type { Database } from "../src/db/client.ts";
import {
  federatedRepos,
  federatedUnits,
  outboundFollows,
  type RemoteActor,
  remoteActors,
} from "../src/db/schema/index.ts";
import { getNodeLogger } from "../src/logging.ts";
import { guardDocumentLoader, lookupObjectIfAllowed } from "../src/policy/outbound.ts";
import type { PolicyEngine } from "../src/policy/types.ts";
import { applyPublishedObject } from "./inbox/catalogue.ts";
import { hostOf } from "./paths.ts";
import type { NodeFederation } from "./setup.ts";

const logger = getNodeLogger("federation", "backfill");

/** Upper bound of outbox items read per peer and run, so a hostile outbox cannot run forever. */
const MAX_ITEMS_PER_PEER = 200_000;

export interface BackfillResult {
  peers: number;
  stored: number;
  removed: number;
  failed: number;
}

/** Default time between two full reads of a followed peer's outbox. */
export const DEFAULT_RESYNC_INTERVAL_MS = 6 * 3_600_000;

/**
 * Backfills every accepted follow that was never read or was last read more than
 * `resyncIntervalMs` ago; failures stay due for the next run.
 */
export async function backfillDueFollows(
  federation: NodeFederation,
  db: Database,
  origin: URL,
  policy: PolicyEngine,
  resyncIntervalMs = DEFAULT_RESYNC_INTERVAL_MS,
): Promise<BackfillResult> {
  const staleBefore = new Date(Date.now() - resyncIntervalMs);
  const due = await db
    .select({ followId: outboundFollows.id, actor: remoteActors })
    .from(outboundFollows)
    .innerJoin(remoteActors, eq(remoteActors.id, outboundFollows.remoteActorId))
    .where(
      and(
        eq(outboundFollows.state, "accepted"),
        or(isNull(outboundFollows.backfilledAt), lt(outboundFollows.backfilledAt, staleBefore)),
      ),
    );

  const result: BackfillResult = { peers: 0, stored: 0, removed: 0, failed: 0 };
  for (const { followId, actor } of due) {
    // Nothing is read from a suspended or content-rejected domain; its follow waits until the
    // rule is lifted or expires.
    if (policy.decide(actor.host).action !== "allow") continue;
    const started = performance.now();
    logger.info("Backfilling the catalogue of {actor}", { actor: actor.iri });
    try {
      const { stored, removed } = await backfillPeer(federation, { db, policy }, origin, actor);
      await db
        .update(outboundFollows)
        .set({ backfilledAt: sql`now()` })
        .where(eq(outboundFollows.id, followId));
      result.peers += 1;
      result.stored += stored;
      result.removed += removed;
      logger.info("Backfilled {stored} objects from {actor}, removed {removed}, in {ms} ms", {
        stored,
        removed,
        actor: actor.iri,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      result.failed += 1;
      logger.warn("Backfill from {actor} failed; it will be retried: {error}", {
        actor: actor.iri,
        error,
      });
    }
  }
  return result;
}

async function backfillPeer(
  federation: NodeFederation,
  deps: { db: Database; policy: PolicyEngine },
  origin: URL,
  actor: RemoteActor,
): Promise<{ stored: number; removed: number }> {
  const { db, policy } = deps;
  const actorIri = actor.iri;
  const outboxUrl = actor.outboxUrl;
  if (!outboxUrl) throw new Error(`Actor ${actorIri} publishes no outbox`);
  const ctx = federation.createContext(origin, undefined);
  const documentLoader = guardDocumentLoader(
    await ctx.getDocumentLoader({ identifier: "instance" }),
    policy,
  );
  const outbox = await lookupObjectIfAllowed(ctx, policy, outboxUrl, { documentLoader });
  if (!(outbox instanceof Collection)) throw new Error(`Outbox ${outboxUrl} is not a collection`);

  const senderHost = hostOf(actorIri);
  const startedAt = new Date();
  const seen: string[] = [];
  let stored = 0;
  let complete = true;
  for await (const item of ctx.traverseCollection(outbox, { documentLoader })) {
    if (seen.length >= MAX_ITEMS_PER_PEER) {
      logger.warn("Stopped reading the outbox of {actor} after {count} items", {
        actor: actorIri,
        count: MAX_ITEMS_PER_PEER,
      });
      complete = false;
      break;
    }
    if (!(item instanceof Create)) continue;
    const object = await item.getObject({ documentLoader });
    if (object?.id) seen.push(object.id.href);
    const outcome = await applyPublishedObject(deps, ctx, object, senderHost);
    if (outcome === "stored") stored += 1;
  }

  // Only a complete read proves that an entity is gone. An instance actor's outbox lists the
  // whole public catalogue of its host; a Repo actor's outbox lists only that Repo's Units.
  const scope: RemovalScope = actor.isPepeunitNode
    ? { host: senderHost }
    : { host: senderHost, repoIri: actorIri };
  const removed = complete ? await removeUnlisted(db, scope, seen, startedAt) : 0;
  return { stored, removed };
}

interface RemovalScope {
  host: string;
  /** Set when only one Repo's Units were listed; the Repo itself is then kept. */
  repoIri?: string;
}

/**
 * Deletes what the read outbox no longer lists. Rows received after the read started are kept:
 * they came through the inbox while the outbox was read and may be missing from earlier pages.
 */
async function removeUnlisted(
  db: Database,
  scope: RemovalScope,
  listed: string[],
  startedAt: Date,
): Promise<number> {
  // One JSON parameter instead of one parameter per IRI, which PostgreSQL caps at 65,535.
  const listedJson = JSON.stringify(listed);
  return await db.transaction(async (tx) => {
    const units = await tx
      .delete(federatedUnits)
      .where(
        and(
          eq(federatedUnits.originHost, scope.host),
          scope.repoIri ? eq(federatedUnits.repoIri, scope.repoIri) : undefined,
          lt(federatedUnits.receivedAt, startedAt),
          sql`${federatedUnits.iri} not in (select jsonb_array_elements_text(${listedJson}::jsonb))`,
        ),
      )
      .returning({ iri: federatedUnits.iri });
    if (scope.repoIri) return units.length;

    const repos = await tx
      .delete(federatedRepos)
      .where(
        and(
          eq(federatedRepos.originHost, scope.host),
          lt(federatedRepos.receivedAt, startedAt),
          sql`${federatedRepos.iri} not in (select jsonb_array_elements_text(${listedJson}::jsonb))`,
        ),
      )
      .returning({ iri: federatedRepos.iri });
    return units.length + repos.length;
  });
}
