/**
 * Reads local Repos and Units that may leave the instance (Public ones only) and turns them
 * into ActivityPub objects.
 */
import type { Context } from "@fedify/fedify";
import {
  Application,
  Create,
  Document,
  Endpoints,
  PUBLIC_COLLECTION,
  Service,
} from "@fedify/vocab";
import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { Config } from "../src/config.ts";
import type { Database, DatabaseLike } from "../src/db/client.ts";
import {
  type Repo,
  repos,
  type Unit,
  type UnitNode,
  unitNodes,
  units,
} from "../src/db/schema/index.ts";
import { INSTANCE_ACTOR, isUuid } from "./paths.ts";
import { encodeNode, encodeVersions, PROPERTY, property, toInstant } from "./wire.ts";

export async function findPublicRepo(db: DatabaseLike, repoId: string): Promise<Repo | undefined> {
  const [repo] = await db
    .select()
    .from(repos)
    .where(and(eq(repos.id, repoId), eq(repos.visibility, "Public")));
  return repo;
}

export interface PublicUnit {
  unit: Unit;
  nodes: UnitNode[];
}

/** Finds a Unit that is Public in a Public Repo, with only its Public nodes. */
export async function findPublicUnit(
  db: DatabaseLike,
  unitId: string,
): Promise<PublicUnit | undefined> {
  const [row] = await db
    .select({ unit: units })
    .from(units)
    .innerJoin(repos, eq(repos.id, units.repoId))
    .where(
      and(eq(units.id, unitId), eq(units.visibility, "Public"), eq(repos.visibility, "Public")),
    );
  if (!row) return undefined;
  const nodes = await publicNodesOf(db, [unitId]);
  return { unit: row.unit, nodes: nodes.get(unitId) ?? [] };
}

async function publicNodesOf(
  db: DatabaseLike,
  unitIds: string[],
): Promise<Map<string, UnitNode[]>> {
  const byUnit = new Map<string, UnitNode[]>();
  if (unitIds.length === 0) return byUnit;
  const rows = await db
    .select()
    .from(unitNodes)
    .where(and(inArray(unitNodes.unitId, unitIds), eq(unitNodes.visibility, "Public")))
    .orderBy(asc(unitNodes.topicName), asc(unitNodes.id));
  for (const node of rows) {
    const list = byUnit.get(node.unitId) ?? [];
    list.push(node);
    byUnit.set(node.unitId, list);
  }
  return byUnit;
}

export async function buildInstanceActor(ctx: Context<void>, config: Config): Promise<Application> {
  const keys = await ctx.getActorKeyPairs(INSTANCE_ACTOR);
  return new Application({
    id: ctx.getActorUri(INSTANCE_ACTOR),
    preferredUsername: INSTANCE_ACTOR,
    name: config.nodeName,
    summary: `Pepeunit Node of ${config.pepeunitDomain}`,
    url: new URL("/", config.origin),
    inbox: ctx.getInboxUri(INSTANCE_ACTOR),
    outbox: ctx.getOutboxUri(INSTANCE_ACTOR),
    followers: ctx.getFollowersUri(INSTANCE_ACTOR),
    endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
    manuallyApprovesFollowers: false,
    attachments: [
      property(PROPERTY.kind, "instance"),
      property(PROPERTY.domain, config.pepeunitDomain),
    ],
    publicKey: keys[0]?.cryptographicKey,
    assertionMethods: keys.map((key) => key.multikey),
  });
}

export async function buildRepoActor(ctx: Context<void>, repo: Repo): Promise<Service> {
  const keys = await ctx.getActorKeyPairs(repo.id);
  const attachments = [
    property(PROPERTY.kind, "repo"),
    property(PROPERTY.id, repo.id),
    property(PROPERTY.repositoryUrl, repo.repositoryUrl),
    property(PROPERTY.platform, repo.platform),
    property(PROPERTY.compilable, String(repo.isCompilable)),
    property(PROPERTY.versions, encodeVersions(repo.versions)),
  ];
  if (repo.defaultBranch) attachments.push(property(PROPERTY.defaultBranch, repo.defaultBranch));
  return new Service({
    id: ctx.getActorUri(repo.id),
    preferredUsername: repo.name,
    name: repo.name,
    summary: repo.summary || null,
    url: new URL(repo.repositoryUrl),
    inbox: ctx.getInboxUri(repo.id),
    outbox: ctx.getOutboxUri(repo.id),
    followers: ctx.getFollowersUri(repo.id),
    manuallyApprovesFollowers: false,
    published: toInstant(repo.createdAt),
    updated: toInstant(repo.updatedAt),
    attachments,
    publicKey: keys[0]?.cryptographicKey,
    assertionMethods: keys.map((key) => key.multikey),
  });
}

export function buildUnitObject(ctx: Context<void>, unit: Unit, nodes: UnitNode[]): Document {
  return new Document({
    id: ctx.getObjectUri(Document, { id: unit.id }),
    name: unit.name,
    attribution: ctx.getActorUri(unit.repoId),
    to: PUBLIC_COLLECTION,
    published: toInstant(unit.createdAt),
    updated: toInstant(unit.updatedAt),
    attachments: [
      property(PROPERTY.kind, "unit"),
      property(PROPERTY.id, unit.id),
      ...nodes.map((node) =>
        property(
          PROPERTY.node,
          encodeNode({ id: node.id, type: node.type, topicName: node.topicName }),
        ),
      ),
    ],
  });
}

/** Outbox page size; the outbox lists the current state as one Create per public entity. */
export const OUTBOX_PAGE_SIZE = 50;

const FIRST_ID = "00000000-0000-0000-0000-000000000000";

/**
 * Reads an outbox cursor: "" for the first page, else "r:<id>" or "u:<id>" for the last Repo
 * or Unit listed. Returns null for anything else, since cursors come back from remote servers.
 */
function parseOutboxCursor(cursor: string): { phase: "r" | "u"; afterId: string } | null {
  if (cursor === "") return { phase: "r", afterId: FIRST_ID };
  const match = /^([ru]):(.+)$/.exec(cursor);
  const [, phase, afterId] = match ?? [];
  if ((phase !== "r" && phase !== "u") || afterId === undefined || !isUuid(afterId)) return null;
  return { phase, afterId };
}

/**
 * Builds a page of the outbox of `actorIdentifier`: the instance actor's outbox lists every
 * public Repo and then every public Unit, a Repo actor's outbox its public Units, each in id
 * order. Returns null for a malformed cursor.
 */
export async function outboxPage(
  ctx: Context<void>,
  db: Database,
  actorIdentifier: string,
  cursor: string,
): Promise<{ items: Create[]; nextCursor: string | null } | null> {
  const position = parseOutboxCursor(cursor);
  if (!position) return null;
  const instance = ctx.getActorUri(INSTANCE_ACTOR);
  const items: Create[] = [];

  if (actorIdentifier === INSTANCE_ACTOR && position.phase === "r") {
    const rows = await db
      .select()
      .from(repos)
      .where(and(eq(repos.visibility, "Public"), gt(repos.id, position.afterId)))
      .orderBy(asc(repos.id))
      .limit(OUTBOX_PAGE_SIZE);
    for (const repo of rows) {
      const actor = await buildRepoActor(ctx, repo);
      items.push(
        new Create({
          id: new URL(`${actor.id?.href}#create`),
          actor: instance,
          object: actor,
          to: PUBLIC_COLLECTION,
          published: toInstant(repo.updatedAt),
        }),
      );
    }
    const last = rows.at(-1);
    if (rows.length === OUTBOX_PAGE_SIZE && last) return { items, nextCursor: `r:${last.id}` };
    return { items, nextCursor: `u:${FIRST_ID}` };
  }

  // The Unit phase starts after the Repos, or at once for a Repo actor.
  const afterUnitId = position.phase === "u" ? position.afterId : FIRST_ID;
  const unitFilter =
    actorIdentifier === INSTANCE_ACTOR ? sql`true` : eq(units.repoId, actorIdentifier);
  const rows = await db
    .select({ unit: units })
    .from(units)
    .innerJoin(repos, eq(repos.id, units.repoId))
    .where(
      and(
        eq(units.visibility, "Public"),
        eq(repos.visibility, "Public"),
        unitFilter,
        gt(units.id, afterUnitId),
      ),
    )
    .orderBy(asc(units.id))
    .limit(OUTBOX_PAGE_SIZE);
  const nodes = await publicNodesOf(
    db,
    rows.map((row) => row.unit.id),
  );
  for (const { unit } of rows) {
    const object = buildUnitObject(ctx, unit, nodes.get(unit.id) ?? []);
    items.push(
      new Create({
        id: new URL(`${object.id?.href}#create`),
        actor: actorIdentifier === INSTANCE_ACTOR ? instance : ctx.getActorUri(unit.repoId),
        object,
        to: PUBLIC_COLLECTION,
        published: toInstant(unit.updatedAt),
      }),
    );
  }
  const last = rows.at(-1);
  return {
    items,
    nextCursor: rows.length === OUTBOX_PAGE_SIZE && last ? `u:${last.unit.id}` : null,
  };
}
