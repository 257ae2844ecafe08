/**
 * Reads of bans: one ban, pages of bans, the audit trail, the active topic bans for the bridge
 * and the open domain bans for the policy engine. Every function that decides "active" takes the
 * caller's clock.
 */
import { and, desc, eq, gt, isNull, lte, or, type SQL, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import { type BanEventRow, type BanKind, banEvents, bans } from "../db/schema/index.ts";
import type { Ban, BanSubject } from "./bans-types.ts";

/** True while a ban is neither lifted, nor recorded as expired, nor past its expiry at `now`. */
export function isBanActive(ban: Ban, now: Date): boolean {
  return (
    ban.liftedAt === null &&
    ban.expiredAt === null &&
    (ban.expiresAt === null || ban.expiresAt.getTime() > now.getTime())
  );
}

/** SQL condition of {@link isBanActive}. */
export function activeAt(now: Date): SQL {
  return and(
    isNull(bans.liftedAt),
    isNull(bans.expiredAt),
    or(isNull(bans.expiresAt), gt(bans.expiresAt, now)),
  ) as SQL;
}

function endedAt(now: Date): SQL {
  return or(
    sql`${bans.liftedAt} is not null`,
    sql`${bans.expiredAt} is not null`,
    lte(bans.expiresAt, now),
  ) as SQL;
}

export async function getBan(db: DatabaseLike, id: string): Promise<Ban | undefined> {
  const [ban] = await db.select().from(bans).where(eq(bans.id, id));
  return ban;
}

/**
 * Returns the active ban that covers `subject` at `now`: for a domain its domain ban, for a topic
 * its topic ban or else the domain ban of the topic's domain.
 */
export async function findActiveBan(
  db: DatabaseLike,
  subject: BanSubject,
  now: Date,
): Promise<Ban | undefined> {
  const domainBan = and(eq(bans.kind, "domain"), eq(bans.domain, subject.domain));
  const covering =
    subject.topic === null
      ? domainBan
      : or(domainBan, and(eq(bans.kind, "topic"), eq(bans.topic, subject.topic)));
  const [ban] = await db
    .select()
    .from(bans)
    .where(and(covering, activeAt(now)))
    .orderBy(bans.kind, desc(bans.startsAt))
    .limit(1);
  return ban;
}

/** Sort key of a ban in lists and page cursors: start time in ISO 8601, a space, id. */
export function banSortKey(ban: Pick<Ban, "startsAt" | "id">): string {
  return `${ban.startsAt.toISOString()} ${ban.id}`;
}

export interface BanListQuery {
  limit: number;
  /** A {@link banSortKey}; the page starts after it. */
  after?: string | undefined;
  /** True lists only active bans at `now`, false only ended ones. */
  active?: boolean | undefined;
  kind?: BanKind | undefined;
  /** Canonical domain; topic bans of that domain are included. */
  domain?: string | undefined;
  now: Date;
}

/** Lists bans, newest start first. */
export async function listBans(db: DatabaseLike, query: BanListQuery): Promise<Ban[]> {
  const conditions: SQL[] = [];
  if (query.active === true) conditions.push(activeAt(query.now));
  if (query.active === false) conditions.push(endedAt(query.now));
  if (query.kind !== undefined) conditions.push(eq(bans.kind, query.kind));
  if (query.domain !== undefined) conditions.push(eq(bans.domain, query.domain));
  if (query.after !== undefined) {
    const space = query.after.indexOf(" ");
    const afterTime = new Date(query.after.slice(0, space));
    const afterId = query.after.slice(space + 1);
    if (space === -1 || Number.isNaN(afterTime.getTime())) {
      throw new RangeError(`Invalid ban cursor key ${JSON.stringify(query.after)}`);
    }
    conditions.push(sql`(${bans.startsAt}, ${bans.id}) < (${afterTime}, ${afterId}::uuid)`);
  }
  return await db
    .select()
    .from(bans)
    .where(and(...conditions))
    .orderBy(desc(bans.startsAt), desc(bans.id))
    .limit(query.limit);
}

/**
 * Returns audit events, newest first: of one ban (`banId`), or of every domain and topic ban of a
 * canonical `domain`. Events stay after their ban ends.
 */
export async function banHistory(
  db: DatabaseLike,
  of: { banId: string } | { domain: string },
  limit: number,
): Promise<BanEventRow[]> {
  const condition = "banId" in of ? eq(banEvents.banId, of.banId) : eq(banEvents.domain, of.domain);
  return await db
    .select()
    .from(banEvents)
    .where(condition)
    .orderBy(desc(banEvents.id))
    .limit(limit);
}

/** Returns every topic ban active at `now`, for the bridge to stop bridging those topics. */
export async function activeTopicBans(db: DatabaseLike, now: Date): Promise<Ban[]> {
  return await db
    .select()
    .from(bans)
    .where(and(eq(bans.kind, "topic"), activeAt(now)))
    .orderBy(bans.topic);
}

/** Returns the topics of the topic bans active at `now`, which bridges do not carry. */
export async function activeBannedTopics(db: DatabaseLike, now: Date): Promise<Set<string>> {
  const topicBans = await activeTopicBans(db, now);
  return new Set(topicBans.flatMap((ban) => (ban.topic ? [ban.topic] : [])));
}

/**
 * Returns the active ban that stops bridging `topic` (`<Pepeunit domain>/<unit node uuid>`) from
 * the node at `host` at `now`: the topic's own ban, or the domain ban of the host. Undefined when
 * neither exists or the topic has no `/`.
 */
export async function findTopicBan(
  db: DatabaseLike,
  host: string,
  topic: string,
  now: Date,
): Promise<Ban | undefined> {
  const slash = topic.indexOf("/");
  if (slash <= 0) return undefined;
  const subject: BanSubject = {
    kind: "topic",
    domain: host.toLowerCase(),
    topic: topic.toLowerCase(),
  };
  return await findActiveBan(db, subject, now);
}

/** The fields of an open domain ban that the policy engine decides with. */
export interface EngineBan {
  id: string;
  domain: string;
  reason: string;
  expiresAt: Date | null;
}

/**
 * Returns the domain bans that are neither lifted nor recorded as expired. The engine compares
 * `expiresAt` with the decision's clock, so a ban whose expiry passed before the sweep ran no
 * longer applies.
 */
export async function loadOpenDomainBans(db: DatabaseLike): Promise<EngineBan[]> {
  return await db
    .select({
      id: bans.id,
      domain: bans.domain,
      reason: bans.reason,
      expiresAt: bans.expiresAt,
    })
    .from(bans)
    .where(and(eq(bans.kind, "domain"), isNull(bans.liftedAt), isNull(bans.expiredAt)));
}
