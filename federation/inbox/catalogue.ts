/** Create, Update and Delete of Repos and Units published by instances this node follows. */
import type { Context, InboxContext } from "@fedify/fedify";
import { type Create, type Delete, Document, Service, type Update } from "@fedify/vocab";
import { eq } from "drizzle-orm";
import type { DatabaseLike } from "../../src/db/client.ts";
import { federatedRepos, federatedUnits } from "../../src/db/schema/index.ts";
import { getNodeLogger } from "../../src/logging.ts";
import { checkRepositoryUrl, countDeniedRepository } from "../../src/policy/git-hosts.ts";
import { guardedLoaders, lookupObjectIfAllowed } from "../../src/policy/outbound.ts";
import { InvalidRepositoryUrlError } from "../../src/policy/repository-url.ts";
import {
  deleteFederatedObject,
  upsertFederatedRepo,
  upsertFederatedUnit,
} from "../catalogue-store.ts";
import { hostOf } from "../paths.ts";
import {
  readRepoActor,
  readUnitObject,
  WireFormatError,
  type WireRepo,
  type WireUnit,
} from "../wire.ts";
import { claimActivity, type InboxDependencies, isFollowedHost } from "./context.ts";

const logger = getNodeLogger("federation", "inbox");

/** Result of applying one published object, in the inbox and in outbox backfills. */
export type ApplyOutcome = "stored" | "stale" | "ignored" | "duplicate" | "unknown-object";

/**
 * Stores a Repo (`Service`) or Unit (`Document`) published by `senderHost`. Objects from
 * another origin than the sender, and objects of other types, are ignored. An Update changes
 * only objects already in the catalogue and returns `unknown-object` otherwise. The periodic
 * outbox resync repairs a lost Create, so an Update is never trusted to create an object.
 * A Repo whose repository host the git host rules reject is ignored.
 */
export async function applyPublishedObject(
  deps: Pick<InboxDependencies, "db" | "policy">,
  ctx: Context<void>,
  object: unknown,
  senderHost: string,
  activity?: { iri: string; actorIri: string; type: string },
): Promise<ApplyOutcome> {
  const { db, policy } = deps;
  if (!(object instanceof Service) && !(object instanceof Document)) return "ignored";
  // A suspended or reject_content domain may still follow and be followed, but its Repos and
  // Units are never stored.
  const decision = policy.decide(senderHost);
  if (decision.action !== "allow") {
    logger.info("Ignored content from {senderHost}: {action} ({reason})", {
      senderHost,
      action: decision.action,
      reason: decision.reason,
    });
    return "ignored";
  }
  const iri = object.id;
  if (!iri || hostOf(iri) !== senderHost) {
    logger.info("Ignored object {iri} sent by {senderHost}: it belongs to another origin", {
      iri: iri?.href ?? "(no id)",
      senderHost,
    });
    return "ignored";
  }

  let wire: WireRepo | WireUnit;
  try {
    wire = object instanceof Service ? await readRepoActor(object) : await readUnitObject(object);
  } catch (error) {
    if (!(error instanceof WireFormatError)) throw error;
    logger.info("Ignored malformed object from {senderHost}: {message}", {
      senderHost,
      message: error.message,
    });
    return "ignored";
  }

  if (!("repoIri" in wire) && !(await isRepositoryHostAllowed(db, wire, senderHost, activity))) {
    return "ignored";
  }

  const isUpdate = activity?.type === "Update";

  // A Unit may arrive before its Repo (deliveries are not ordered); fetch the Repo first.
  if (!isUpdate && "repoIri" in wire && hostOf(wire.repoIri) === senderHost) {
    const repoIri = wire.repoIri;
    const known = await db.query.federatedRepos.findFirst({
      where: (table, { eq }) => eq(table.iri, repoIri),
      columns: { iri: true },
    });
    if (!known) {
      const repoActor = await lookupObjectIfAllowed(ctx, policy, repoIri);
      if (repoActor instanceof Service) {
        await applyPublishedObject(deps, ctx, repoActor, senderHost);
      }
    }
  }

  const unitOrRepo = wire;
  return await db.transaction(async (tx) => {
    if (activity && !(await claimActivity(tx, activity.iri, activity.actorIri, activity.type))) {
      return "duplicate";
    }
    if (isUpdate && !(await isInCatalogue(tx, unitOrRepo))) return "unknown-object";
    const outcome =
      "repoIri" in unitOrRepo
        ? await upsertFederatedUnit(tx, unitOrRepo, senderHost)
        : await upsertFederatedRepo(tx, unitOrRepo, senderHost);
    if (outcome === "unknown-repo") {
      logger.info("Ignored Unit {iri}: its Repo {repoIri} is not in the catalogue", {
        iri: unitOrRepo.iri,
        repoIri: "repoIri" in unitOrRepo ? unitOrRepo.repoIri : "",
      });
      return "ignored";
    }
    return outcome;
  });
}

/**
 * Checks the repository URL of a federated Repo against the git host rules, and logs and counts
 * a rejection. Like content of a reject_content domain, a rejected Repo is not stored, but its
 * activity is still acknowledged, so the peer does not retry it.
 *
 * NOTE: an Update that moves a stored Repo to a denied host leaves the stored copy as it was.
 * The copy is removed only when the peer deletes the Repo or the follow ends.
 */
async function isRepositoryHostAllowed(
  db: DatabaseLike,
  repo: WireRepo,
  senderHost: string,
  activity: { actorIri: string } | undefined,
): Promise<boolean> {
  const actor = activity?.actorIri ?? `(outbox of ${senderHost})`;
  let reason: string;
  let host: string;
  try {
    const decision = await checkRepositoryUrl(db, repo.repositoryUrl);
    if (decision.allowed) return true;
    reason = decision.reason;
    host = decision.host;
  } catch (error) {
    if (!(error instanceof InvalidRepositoryUrlError)) throw error;
    reason = error.message;
    host = "(invalid)";
  }
  countDeniedRepository("peer");
  logger.info(
    "Ignored Repo {iri} from {actor}: repository host {host} is not accepted ({reason})",
    {
      iri: repo.iri,
      actor,
      senderHost,
      host,
      reason,
    },
  );
  return false;
}

async function isInCatalogue(tx: DatabaseLike, wire: WireRepo | WireUnit): Promise<boolean> {
  const table = "repoIri" in wire ? federatedUnits : federatedRepos;
  const rows = await tx.select({ iri: table.iri }).from(table).where(eq(table.iri, wire.iri));
  return rows.length > 0;
}

async function onCreateOrUpdate(
  deps: InboxDependencies,
  ctx: InboxContext<void>,
  activity: Create | Update,
): Promise<void> {
  const type = activity.constructor.name;
  if (!activity.id || !activity.actorId) {
    logger.debug("Ignored a {type} without id or actor", { type });
    return;
  }
  const senderHost = hostOf(activity.actorId);
  if (!(await isFollowedHost(deps.db, senderHost))) {
    logger.info("Ignored {type} {activityId}: this node does not follow {senderHost}", {
      type,
      activityId: activity.id.href,
      senderHost,
    });
    return;
  }
  const object = await activity.getObject(guardedLoaders(ctx, deps.policy));
  const outcome = await applyPublishedObject(deps, ctx, object, senderHost, {
    iri: activity.id.href,
    actorIri: activity.actorId.href,
    type,
  });
  logger.info("{type} {activityId} from {senderHost}: {outcome}", {
    type,
    activityId: activity.id.href,
    senderHost,
    outcome,
  });
}

export const onCreate = onCreateOrUpdate;
export const onUpdate = onCreateOrUpdate;

export async function onDelete(
  deps: InboxDependencies,
  _ctx: InboxContext<void>,
  activity: Delete,
): Promise<void> {
  if (!activity.id || !activity.actorId || !activity.objectId) {
    logger.debug("Ignored a Delete without id, actor or object");
    return;
  }
  const senderHost = hostOf(activity.actorId);
  const objectIri = activity.objectId;
  if (hostOf(objectIri) !== senderHost) {
    logger.info("Ignored Delete {activityId}: {object} belongs to another origin", {
      activityId: activity.id.href,
      object: objectIri.href,
    });
    return;
  }
  const activityIri = activity.id.href;
  const actorIri = activity.actorId.href;
  const outcome = await deps.db.transaction(async (tx) => {
    if (!(await claimActivity(tx, activityIri, actorIri, "Delete"))) return "duplicate";
    return (await deleteFederatedObject(tx, objectIri.href, senderHost)) ? "deleted" : "unknown";
  });
  logger.info("Delete {activityId} of {object}: {outcome}", {
    activityId: activityIri,
    object: objectIri.href,
    outcome,
  });
}
