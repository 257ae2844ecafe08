/**
 * Turns committed catalogue changes (`catalogue_changes`) into Create, Update and Delete
 * activities for followers. The current row decides the activity, and `announced_entities`
 * records what was announced to followers, so replaying a change is harmless.
 */
import type { Context } from "@fedify/fedify";
import { Create, Delete, PUBLIC_COLLECTION, Tombstone, Update } from "@fedify/vocab";
import { asc, count, eq, inArray } from "drizzle-orm";
import type { Database, Transaction } from "../src/db/client.ts";
import {
  announcedEntities,
  type CatalogueEntityKind,
  catalogueChanges,
  inboundFollows,
} from "../src/db/schema/index.ts";
import { getNodeLogger } from "../src/logging.ts";
import { buildRepoActor, buildUnitObject, findPublicRepo, findPublicUnit } from "./entities.ts";
import { INSTANCE_ACTOR } from "./paths.ts";
import type { NodeFederation } from "./setup.ts";
import { toInstant } from "./wire.ts";

const logger = getNodeLogger("federation", "publisher");

const BATCH_SIZE = 100;

function activityId(ctx: Context<void>, actorIdentifier: string): URL {
  return new URL(`/ap/activities/${actorIdentifier}/${crypto.randomUUID()}`, ctx.origin);
}

async function hasFollowers(db: Transaction | Database, identifier: string): Promise<boolean> {
  const [row] = await db
    .select({ total: count() })
    .from(inboundFollows)
    .where(eq(inboundFollows.actorIdentifier, identifier));
  return (row?.total ?? 0) > 0;
}

/**
 * Sends `build(actorIdentifier)` to the followers of the instance actor, and of `repoId`'s
 * actor when that Repo has followers of its own (any ActivityPub server may follow a Repo).
 */
async function fanOut(
  ctx: Context<void>,
  db: Transaction,
  repoId: string | null,
  build: (actorIdentifier: string) => Create | Update | Delete,
): Promise<void> {
  const senders = [INSTANCE_ACTOR];
  if (repoId && (await hasFollowers(db, repoId))) senders.push(repoId);
  for (const identifier of senders) {
    if (!(await hasFollowers(db, identifier))) continue;
    await ctx.sendActivity({ identifier }, "followers", build(identifier), {
      preferSharedInbox: true,
    });
  }
}

async function publishRepo(ctx: Context<void>, tx: Transaction, repoId: string): Promise<string> {
  const repo = await findPublicRepo(tx, repoId);
  const [announced] = await tx
    .select()
    .from(announcedEntities)
    .where(eq(announcedEntities.entityId, repoId));

  if (repo) {
    const actor = await buildRepoActor(ctx, repo);
    const Activity = announced ? Update : Create;
    await fanOut(
      ctx,
      tx,
      repo.id,
      (identifier) =>
        new Activity({
          id: activityId(ctx, identifier),
          actor: ctx.getActorUri(identifier),
          object: actor,
          to: PUBLIC_COLLECTION,
          cc: ctx.getFollowersUri(identifier),
          published: toInstant(new Date()),
        }),
    );
    if (!announced) {
      await tx.insert(announcedEntities).values({ entityId: repoId, entityKind: "repo" });
    }
    return announced ? "Update" : "Create";
  }

  if (!announced) return "nothing";
  const iri = ctx.getActorUri(repoId);
  await fanOut(
    ctx,
    tx,
    null,
    (identifier) =>
      new Delete({
        id: activityId(ctx, identifier),
        actor: ctx.getActorUri(identifier),
        object: new Tombstone({ id: iri }),
        to: PUBLIC_COLLECTION,
        cc: ctx.getFollowersUri(identifier),
      }),
  );
  // Peers drop a Repo's Units with the Repo, so its Units are no longer announced either.
  await tx.delete(announcedEntities).where(eq(announcedEntities.repoId, repoId));
  await tx.delete(announcedEntities).where(eq(announcedEntities.entityId, repoId));
  return "Delete";
}

async function publishUnit(ctx: Context<void>, tx: Transaction, unitId: string): Promise<string> {
  const found = await findPublicUnit(tx, unitId);
  const [announced] = await tx
    .select()
    .from(announcedEntities)
    .where(eq(announcedEntities.entityId, unitId));

  if (found) {
    const object = buildUnitObject(ctx, found.unit, found.nodes);
    const Activity = announced ? Update : Create;
    await fanOut(
      ctx,
      tx,
      found.unit.repoId,
      (identifier) =>
        new Activity({
          id: activityId(ctx, identifier),
          actor: ctx.getActorUri(identifier),
          object,
          to: PUBLIC_COLLECTION,
          cc: ctx.getFollowersUri(identifier),
          published: toInstant(new Date()),
        }),
    );
    if (!announced) {
      await tx
        .insert(announcedEntities)
        .values({ entityId: unitId, entityKind: "unit", repoId: found.unit.repoId });
    }
    return announced ? "Update" : "Create";
  }

  if (!announced) return "nothing";
  const iri = new URL(`/ap/units/${unitId}`, ctx.origin);
  await fanOut(
    ctx,
    tx,
    announced.repoId,
    (identifier) =>
      new Delete({
        id: activityId(ctx, identifier),
        actor: ctx.getActorUri(identifier),
        object: new Tombstone({ id: iri }),
        to: PUBLIC_COLLECTION,
        cc: ctx.getFollowersUri(identifier),
      }),
  );
  await tx.delete(announcedEntities).where(eq(announcedEntities.entityId, unitId));
  return "Delete";
}

/**
 * Publishes up to one batch of pending changes; returns how many change rows it consumed.
 * Rows are locked with SKIP LOCKED, so several workers can drain the table together.
 */
export async function publishPendingChanges(
  federation: NodeFederation,
  db: Database,
  origin: URL,
): Promise<number> {
  const ctx = federation.createContext(origin, undefined);
  return await db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(catalogueChanges)
      .orderBy(asc(catalogueChanges.id))
      .limit(BATCH_SIZE)
      .for("update", { skipLocked: true });
    if (rows.length === 0) return 0;

    // Several changes of one entity in a batch collapse into one activity.
    const seen = new Set<string>();
    for (const row of rows) {
      const key = `${row.entityKind}:${row.entityId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const action = await publishEntity(ctx, tx, row.entityKind, row.entityId);
      logger.debug("Published {kind} {id}: {action}", {
        kind: row.entityKind,
        id: row.entityId,
        action,
      });
    }
    await tx.delete(catalogueChanges).where(
      inArray(
        catalogueChanges.id,
        rows.map((row) => row.id),
      ),
    );
    return rows.length;
  });
}

async function publishEntity(
  ctx: Context<void>,
  tx: Transaction,
  kind: CatalogueEntityKind,
  id: string,
): Promise<string> {
  return kind === "repo" ? await publishRepo(ctx, tx, id) : await publishUnit(ctx, tx, id);
}
