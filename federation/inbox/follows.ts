/** Follow and Undo(Follow) addressed to this node's actors, and Accept/Reject of our own Follows. */
import type { InboxContext } from "@fedify/fedify";
import { Accept, Follow, Reject, type Undo } from "@fedify/vocab";
import { and, eq, sql } from "drizzle-orm";
import { inboundFollows, outboundFollows, remoteActors } from "../../src/db/schema/index.ts";
import { getNodeLogger } from "../../src/logging.ts";
import { guardedLoaders, sendActivityToAllowed } from "../../src/policy/outbound.ts";
import { findPublicRepo } from "../entities.ts";
import { INSTANCE_ACTOR, isUuid } from "../paths.ts";
import { upsertRemoteActor } from "../remote-actors.ts";
import { claimActivity, type InboxDependencies } from "./context.ts";

const logger = getNodeLogger("federation", "inbox");

export async function onFollow(
  deps: InboxDependencies,
  ctx: InboxContext<void>,
  follow: Follow,
): Promise<void> {
  if (!follow.id || !follow.actorId || !follow.objectId) {
    logger.debug("Ignored a Follow without id, actor or object");
    return;
  }
  const follower = await follow.getActor(guardedLoaders(ctx, deps.policy));
  if (!follower?.id || !follower.inboxId) {
    logger.info("Ignored Follow {activityId}: its actor cannot be fetched or has no inbox", {
      activityId: follow.id.href,
    });
    return;
  }

  const target = ctx.parseUri(follow.objectId);
  const identifier = target?.type === "actor" ? target.identifier : undefined;
  const followable =
    identifier === INSTANCE_ACTOR ||
    (identifier !== undefined && isUuid(identifier) && (await findPublicRepo(deps.db, identifier)));
  if (!identifier || !followable) {
    logger.info("Rejected Follow {activityId} of unknown actor {object}", {
      activityId: follow.id.href,
      object: follow.objectId.href,
    });
    await sendActivityToAllowed(
      ctx,
      deps.policy,
      { identifier: INSTANCE_ACTOR },
      follower,
      new Reject({
        id: new URL(`#reject-${crypto.randomUUID()}`, ctx.getActorUri(INSTANCE_ACTOR)),
        actor: ctx.getActorUri(INSTANCE_ACTOR),
        object: follow,
      }),
    );
    return;
  }

  const followId = follow.id;
  const fresh = await deps.db.transaction(async (tx) => {
    if (!(await claimActivity(tx, followId.href, follower.id?.href ?? "", "Follow"))) return false;
    const actor = await upsertRemoteActor(tx, follower);
    await tx
      .insert(inboundFollows)
      .values({
        actorIdentifier: identifier,
        remoteActorId: actor.id,
        followActivityIri: followId.href,
      })
      .onConflictDoUpdate({
        target: [inboundFollows.actorIdentifier, inboundFollows.remoteActorId],
        set: { followActivityIri: followId.href },
      });
    return true;
  });
  if (!fresh) {
    logger.debug("Follow {activityId} was already processed", { activityId: followId.href });
    return;
  }

  await sendActivityToAllowed(
    ctx,
    deps.policy,
    { identifier },
    follower,
    new Accept({
      id: new URL(`#accept-${crypto.randomUUID()}`, ctx.getActorUri(identifier)),
      actor: ctx.getActorUri(identifier),
      object: follow,
    }),
  );
  logger.info("Accepted Follow of {identifier} by {follower}", {
    identifier,
    follower: follower.id.href,
  });
}

export async function onUndo(
  deps: InboxDependencies,
  ctx: InboxContext<void>,
  undo: Undo,
): Promise<void> {
  const object = await undo.getObject(guardedLoaders(ctx, deps.policy));
  if (!undo.actorId || !(object instanceof Follow)) {
    logger.debug("Ignored an Undo of something other than a Follow");
    return;
  }
  const followIri = object.id?.href;
  const actorIri = undo.actorId.href;
  const removed = await deps.db
    .delete(inboundFollows)
    .where(
      and(
        sql`${inboundFollows.remoteActorId} in (select id from remote_actors where iri = ${actorIri})`,
        followIri ? eq(inboundFollows.followActivityIri, followIri) : sql`true`,
      ),
    )
    .returning({ id: inboundFollows.id });
  logger.info("Undo(Follow) from {actor} removed {count} follow(s)", {
    actor: actorIri,
    count: removed.length,
  });
}

async function updateOutboundFollow(
  deps: InboxDependencies,
  actorIri: string,
  followIri: string | undefined,
  state: "accepted" | "rejected",
): Promise<number> {
  const rows = await deps.db
    .update(outboundFollows)
    .set({ state, updatedAt: sql`now()`, ...(state === "accepted" ? { backfilledAt: null } : {}) })
    .where(
      and(
        sql`${outboundFollows.remoteActorId} in (select ${remoteActors.id} from ${remoteActors} where ${remoteActors.iri} = ${actorIri})`,
        followIri ? eq(outboundFollows.followActivityIri, followIri) : sql`true`,
      ),
    )
    .returning({ id: outboundFollows.id });
  return rows.length;
}

export async function onAccept(
  deps: InboxDependencies,
  _ctx: InboxContext<void>,
  accept: Accept,
): Promise<void> {
  if (!accept.actorId) return;
  const updated = await updateOutboundFollow(
    deps,
    accept.actorId.href,
    accept.objectId?.href,
    "accepted",
  );
  if (updated === 0) {
    logger.info("Ignored Accept from {actor}: no matching Follow was sent", {
      actor: accept.actorId.href,
    });
    return;
  }
  logger.info("{actor} accepted our Follow; its catalogue will be backfilled", {
    actor: accept.actorId.href,
  });
}

export async function onReject(
  deps: InboxDependencies,
  _ctx: InboxContext<void>,
  reject: Reject,
): Promise<void> {
  if (!reject.actorId) return;
  const updated = await updateOutboundFollow(
    deps,
    reject.actorId.href,
    reject.objectId?.href,
    "rejected",
  );
  logger.info("{actor} rejected our Follow ({count} follow(s) updated)", {
    actor: reject.actorId.href,
    count: updated,
  });
}
