/**
 * Writes of the federated catalogue: what other instances publish, applied from inbox
 * deliveries and from outbox backfills alike.
 */
import { and, eq, or, sql } from "drizzle-orm";
import type { DatabaseLike } from "../src/db/client.ts";
import { federatedRepos, federatedUnits } from "../src/db/schema/index.ts";
import type { WireRepo, WireUnit } from "./wire.ts";

export type StoreOutcome = "stored" | "stale" | "unknown-repo";

/**
 * Inserts or updates a federated Repo. An object whose `updated` is older than the stored one
 * is `stale` and changes nothing, so late or replayed deliveries cannot roll a Repo back.
 */
export async function upsertFederatedRepo(
  db: DatabaseLike,
  repo: WireRepo,
  originHost: string,
): Promise<StoreOutcome> {
  const values = {
    iri: repo.iri,
    originHost,
    pepeunitId: repo.pepeunitId,
    name: repo.name,
    summary: repo.summary,
    repositoryUrl: repo.repositoryUrl,
    platform: repo.platform,
    defaultBranch: repo.defaultBranch,
    isCompilable: repo.isCompilable,
    versions: repo.versions,
    publishedAt: repo.published,
    remoteUpdatedAt: repo.updated,
  };
  const rows = await db
    .insert(federatedRepos)
    .values(values)
    .onConflictDoUpdate({
      target: federatedRepos.iri,
      set: { ...values, receivedAt: sql`now()` },
      setWhere: and(
        eq(federatedRepos.originHost, originHost),
        or(
          sql`${federatedRepos.remoteUpdatedAt} is null`,
          sql`${federatedRepos.remoteUpdatedAt} <= excluded.remote_updated_at`,
        ),
      ),
    })
    .returning({ iri: federatedRepos.iri });
  return rows.length > 0 ? "stored" : "stale";
}

export async function upsertFederatedUnit(
  db: DatabaseLike,
  unit: WireUnit,
  originHost: string,
): Promise<StoreOutcome> {
  const [repo] = await db
    .select({ iri: federatedRepos.iri })
    .from(federatedRepos)
    .where(and(eq(federatedRepos.iri, unit.repoIri), eq(federatedRepos.originHost, originHost)));
  if (!repo) return "unknown-repo";
  const values = {
    iri: unit.iri,
    repoIri: unit.repoIri,
    originHost,
    pepeunitId: unit.pepeunitId,
    name: unit.name,
    nodes: unit.nodes,
    remoteUpdatedAt: unit.updated,
  };
  const rows = await db
    .insert(federatedUnits)
    .values(values)
    .onConflictDoUpdate({
      target: federatedUnits.iri,
      set: { ...values, receivedAt: sql`now()` },
      setWhere: and(
        eq(federatedUnits.originHost, originHost),
        or(
          sql`${federatedUnits.remoteUpdatedAt} is null`,
          sql`${federatedUnits.remoteUpdatedAt} <= excluded.remote_updated_at`,
        ),
      ),
    })
    .returning({ iri: federatedUnits.iri });
  return rows.length > 0 ? "stored" : "stale";
}

/** Deletes a federated Repo (with its Units) or Unit; returns false when nothing matched. */
export async function deleteFederatedObject(
  db: DatabaseLike,
  iri: string,
  originHost: string,
): Promise<boolean> {
  const deletedRepos = await db
    .delete(federatedRepos)
    .where(and(eq(federatedRepos.iri, iri), eq(federatedRepos.originHost, originHost)))
    .returning({ iri: federatedRepos.iri });
  if (deletedRepos.length > 0) return true;
  const deletedUnits = await db
    .delete(federatedUnits)
    .where(and(eq(federatedUnits.iri, iri), eq(federatedUnits.originHost, originHost)))
    .returning({ iri: federatedUnits.iri });
  return deletedUnits.length > 0;
}
