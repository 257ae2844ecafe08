import { and, eq, inArray } from "drizzle-orm";
import type { Config } from "../../src/config.ts";
import type { Database, DatabaseLike } from "../../src/db/client.ts";
import { outboundFollows, processedActivities, remoteActors } from "../../src/db/schema/index.ts";
import type { PolicyEngine } from "../../src/policy/types.ts";

export interface InboxDependencies {
  db: Database;
  config: Config;
  /** Federation policy: who may be fetched from, delivered to and stored. */
  policy: PolicyEngine;
}

/**
 * Marks an activity as processed inside the caller's transaction. Returns false when it was
 * processed before, so the caller applies nothing twice.
 */
export async function claimActivity(
  db: DatabaseLike,
  activityIri: string,
  actorIri: string,
  type: string,
): Promise<boolean> {
  const rows = await db
    .insert(processedActivities)
    .values({ activityIri, actorIri, type })
    .onConflictDoNothing()
    .returning({ activityIri: processedActivities.activityIri });
  return rows.length > 0;
}

/** True when this node follows (or has asked to follow) an actor on `host`. */
export async function isFollowedHost(db: DatabaseLike, host: string): Promise<boolean> {
  const rows = await db
    .select({ id: outboundFollows.id })
    .from(outboundFollows)
    .innerJoin(remoteActors, eq(remoteActors.id, outboundFollows.remoteActorId))
    .where(
      and(eq(remoteActors.host, host), inArray(outboundFollows.state, ["pending", "accepted"])),
    )
    .limit(1);
  return rows.length > 0;
}
