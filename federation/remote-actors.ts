import type { Actor } from "@fedify/vocab";
import { sql } from "drizzle-orm";
import type { DatabaseLike } from "../src/db/client.ts";
import { type RemoteActor, remoteActors } from "../src/db/schema/index.ts";
import { hostOf } from "./paths.ts";
import { PROPERTY, readProperties } from "./wire.ts";

/** Stores or refreshes what this node needs to know of a remote actor; returns the row. */
export async function upsertRemoteActor(db: DatabaseLike, actor: Actor): Promise<RemoteActor> {
  const iri = actor.id;
  const inbox = actor.inboxId;
  if (!iri || !inbox) throw new Error("Remote actor has no id or no inbox");
  const properties = await readProperties(actor);
  const values = {
    iri: iri.href,
    host: hostOf(iri),
    type: actor.constructor.name,
    name: actor.name?.toString() ?? actor.preferredUsername?.toString() ?? null,
    inboxUrl: inbox.href,
    sharedInboxUrl: actor.endpoints?.sharedInbox?.href ?? null,
    outboxUrl: actor.outboxId?.href ?? null,
    isPepeunitNode: properties.get(PROPERTY.kind)?.[0] === "instance",
  };
  const [row] = await db
    .insert(remoteActors)
    .values(values)
    .onConflictDoUpdate({
      target: remoteActors.iri,
      set: { ...values, updatedAt: sql`now()` },
    })
    .returning();
  if (!row) throw new Error(`Remote actor ${iri.href} was not stored`);
  return row;
}
