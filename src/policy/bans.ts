/**
 * Bans in PostgreSQL: impose them for violations and at an administrator's request, lift, extend
 * and expire them. Every write runs in one transaction with its audit event in `ban_events` and a
 * bump of `domain_rules_version`, so that policy engines in every process reload.
 *
 * Escalation: the level of a new ban is one more than the number of bans of the same subject
 * that started within {@link ESCALATION_LOOKBACK_DAYS} days and were not lifted, at most 4. Level
 * 1 lasts 1 day, 2 lasts 7 days, 3 lasts 30 days, and 4 is permanent ("trust broken"). A
 * permanent level 4 domain ban also creates a permanent `suspend` deny rule (`created_by: auto`),
 * so the domain shows in the deny list and the CSV export. Lifting the ban lifts that rule;
 * lifting the rule through the domain rule routes leaves the ban in force.
 */
import { and, eq, gt, isNull, lte, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  type BanCondition,
  type BanEventType,
  type BanSnapshot,
  banEvents,
  bans,
  MAX_BAN_LEVEL,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { activeAt, findActiveBan } from "./bans-queries.ts";
import {
  type Ban,
  type BanResult,
  type BanSettings,
  type BanSubject,
  type BanSubjectInput,
  banExpiry,
  checkSubject,
  describeSubject,
  describeViolation,
  ESCALATION_LOOKBACK_DAYS,
  escalationLevel,
  invalidBan,
  MAX_BAN_REASON_LENGTH,
  MAX_EVIDENCE_SAMPLES,
  type Violation,
  ViolationEvidenceSchema,
} from "./bans-types.ts";
import { bumpRulesVersion, createDomainRule, liftDomainRule, updateDomainRule } from "./rules.ts";

const logger = getNodeLogger("policy", "bans");

const DAY_MS = 86_400_000;

/** Raised by {@link recordViolation} for a subject or evidence that callers must not send. */
export class InvalidViolationError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`Invalid violation ${field}: ${message}`);
    this.name = "InvalidViolationError";
    this.field = field;
  }
}

/** Outcome of {@link recordViolation}. */
export type ViolationOutcome =
  /** A new ban; `domainBan` is the domain ban that this topic ban's count caused, if any. */
  | { action: "banned"; ban: Ban; domainBan: Ban | null }
  /** Nothing: an active ban already covers the subject, and bans do not stack. */
  | { action: "already_banned"; ban: Ban }
  /** Nothing: the evidence's count is below its limit. */
  | { action: "below_limit" };

/** Returns the ban as stored in the `before` and `after` of an audit event. */
export function banSnapshot(ban: Ban): BanSnapshot {
  return {
    ...ban,
    startsAt: ban.startsAt.toISOString(),
    expiresAt: ban.expiresAt?.toISOString() ?? null,
    expiredAt: ban.expiredAt?.toISOString() ?? null,
    liftedAt: ban.liftedAt?.toISOString() ?? null,
    createdAt: ban.createdAt.toISOString(),
    updatedAt: ban.updatedAt.toISOString(),
  };
}

interface BanEvent {
  type: BanEventType;
  actor: string;
  reason?: string | null;
  before: Ban | null;
  after: Ban | null;
  at: Date;
}

async function writeBanEvents(tx: DatabaseLike, events: readonly BanEvent[]): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((event) => {
    const ban = event.after ?? event.before;
    if (ban === null) throw new Error("A ban event needs the ban before or after the change");
    return {
      banId: ban.id,
      kind: ban.kind,
      domain: ban.domain,
      topic: ban.topic,
      type: event.type,
      actor: event.actor,
      reason: event.reason ?? null,
      before: event.before === null ? null : banSnapshot(event.before),
      after: event.after === null ? null : banSnapshot(event.after),
      createdAt: event.at,
    };
  });
  await tx.insert(banEvents).values(rows);
}

/**
 * Serialises ban writes of one domain across processes until the transaction ends, so two
 * violations reported at once cannot both create a ban. Topic bans share their domain's lock
 * because a topic ban may create a domain ban.
 */
async function lockSubject(tx: DatabaseLike, subject: BanSubject): Promise<void> {
  await tx.execute(
    sql`select pg_advisory_xact_lock(hashtextextended(${`ban ${subject.domain}`}, 0))`,
  );
}

/** Counts the bans of `subject` that raise the level of a new ban at `now`. */
async function countPriorBans(tx: DatabaseLike, subject: BanSubject, now: Date): Promise<number> {
  const since = new Date(now.getTime() - ESCALATION_LOOKBACK_DAYS * DAY_MS);
  const [row] = await tx
    .select({ count: sql<number>`count(*)::int` })
    .from(bans)
    .where(
      and(
        eq(bans.kind, subject.kind),
        eq(bans.domain, subject.domain),
        subject.topic === null ? isNull(bans.topic) : eq(bans.topic, subject.topic),
        gt(bans.startsAt, since),
        lte(bans.startsAt, now),
        isNull(bans.liftedAt),
      ),
    );
  return row?.count ?? 0;
}

interface NewBan {
  subject: BanSubject;
  condition: BanCondition;
  reason: string;
  evidence: Record<string, unknown>;
  createdBy: "auto" | "admin";
  /** An expiry chosen by the administrator; undefined takes the one of the escalation level. */
  expiresAt?: Date | null | undefined;
  now: Date;
}

/**
 * Inserts a ban at the next escalation level with its `created` event; call it inside a
 * transaction that holds {@link lockSubject}. A permanent level 4 domain ban also gets its
 * permanent deny rule.
 */
async function insertBan(tx: DatabaseLike, input: NewBan): Promise<Ban> {
  const { subject, now } = input;
  const level = escalationLevel(await countPriorBans(tx, subject, now));
  const expiresAt = input.expiresAt === undefined ? banExpiry(level, now) : input.expiresAt;

  let [ban] = await tx
    .insert(bans)
    .values({
      kind: subject.kind,
      domain: subject.domain,
      topic: subject.topic,
      level,
      condition: input.condition,
      reason: input.reason,
      evidence: input.evidence,
      createdBy: input.createdBy,
      startsAt: now,
      expiresAt,
      createdAt: now,
      updatedAt: now,
    })
    .returning();
  if (ban === undefined)
    throw new Error(`Insert of a ban of ${describeSubject(subject)} returned nothing`);

  if (subject.kind === "domain" && level === MAX_BAN_LEVEL && expiresAt === null) {
    const ruleId = await ensurePermanentDenyRule(tx, ban, now);
    if (ruleId !== null) {
      [ban] = await tx.update(bans).set({ ruleId }).where(eq(bans.id, ban.id)).returning();
      if (ban === undefined) throw new Error("A new ban vanished inside its own transaction");
    }
  }

  await writeBanEvents(tx, [
    { type: "created", actor: input.createdBy, before: null, after: ban, at: now },
  ]);
  await bumpRulesVersion(tx);
  logger.warn("Banned {subject} at level {level} until {expiresAt} for {condition}: {reason}", {
    subject: describeSubject(subject),
    banId: ban.id,
    level,
    expiresAt: expiresAt?.toISOString() ?? "permanent",
    condition: input.condition,
    reason: input.reason,
  });
  return ban;
}

/**
 * Makes sure a permanent `suspend` deny rule covers the banned domain. Returns the id of the rule
 * it created, or null when it raised an existing deny rule to permanent `suspend` or one was
 * already there; such a rule belongs to its creator and stays when the ban is lifted.
 */
async function ensurePermanentDenyRule(
  tx: DatabaseLike,
  ban: Ban,
  now: Date,
): Promise<string | null> {
  const reason = `trust broken: level ${MAX_BAN_LEVEL} ban ${ban.id} (${ban.condition})`;
  const created = await createDomainRule(
    tx,
    { domain: ban.domain, kind: "deny", severity: "suspend", includeSubdomains: false, reason },
    "auto",
    now,
  );
  if (created.ok) return created.value.id;
  if (created.failure.kind !== "exists") {
    throw new Error(
      `Cannot create the deny rule of ban ${ban.id}: ${JSON.stringify(created.failure)}`,
    );
  }
  const existing = created.failure.rule;
  if (existing.severity !== "suspend" || existing.expiresAt !== null) {
    const updated = await updateDomainRule(
      tx,
      existing.id,
      { severity: "suspend", expiresAt: null },
      "auto",
      now,
    );
    if (!updated.ok) {
      throw new Error(
        `Cannot raise deny rule ${existing.id} for ban ${ban.id}: ${JSON.stringify(updated.failure)}`,
      );
    }
  }
  return null;
}

/**
 * Creates the domain ban that too many topic bans cause: when the domain has at least
 * `topicBansForDomain` unlifted topic bans that started within the window and no active domain
 * ban. Call it in the transaction of the topic ban, holding {@link lockSubject}.
 */
async function banDomainForTopicBans(
  tx: DatabaseLike,
  domain: string,
  settings: BanSettings,
  now: Date,
): Promise<Ban | null> {
  if (settings.topicBansForDomain <= 0) return null;
  const windowMs = settings.topicBansWindowSeconds * 1000;
  const since = new Date(now.getTime() - windowMs);
  const topicBans = await tx
    .select()
    .from(bans)
    .where(
      and(
        eq(bans.kind, "topic"),
        eq(bans.domain, domain),
        gt(bans.startsAt, since),
        lte(bans.startsAt, now),
        isNull(bans.liftedAt),
      ),
    )
    .orderBy(bans.startsAt);
  if (topicBans.length < settings.topicBansForDomain) return null;

  const subject: BanSubject = { kind: "domain", domain, topic: null };
  if ((await findActiveBan(tx, subject, now)) !== undefined) return null;

  const first = topicBans[0];
  const last = topicBans.at(-1);
  if (first === undefined || last === undefined) return null;
  const evidence = {
    count: topicBans.length,
    windowSeconds: settings.topicBansWindowSeconds,
    limit: settings.topicBansForDomain,
    firstSeenAt: first.startsAt.toISOString(),
    lastSeenAt: last.startsAt.toISOString(),
    samples: topicBans.slice(-MAX_EVIDENCE_SAMPLES).map((ban) => ({
      banId: ban.id,
      topic: ban.topic,
      condition: ban.condition,
      level: ban.level,
      startsAt: ban.startsAt.toISOString(),
    })),
  };
  return await insertBan(tx, {
    subject,
    condition: "topic_bans",
    reason: describeViolation("topic_bans", evidence),
    evidence,
    createdBy: "auto",
    now,
  });
}

/**
 * Decides about one measured violation and writes a ban when the evidence's count has reached
 * its limit and no active ban covers the subject. A topic ban may also cause a domain ban (see
 * {@link BanSettings}). Callers report a violation once per threshold crossing, not per event.
 *
 * @throws {InvalidViolationError} for an invalid subject, evidence or reason.
 */
export async function recordViolation(
  db: DatabaseLike,
  violation: Violation,
  settings: BanSettings,
): Promise<ViolationOutcome> {
  const subject = checkSubject(violation.subject);
  if (!subject.ok) {
    const failure = subject.failure;
    if (failure.kind === "invalid") {
      throw new InvalidViolationError(`subject.${failure.field}`, failure.message);
    }
    throw new InvalidViolationError("subject", failure.kind);
  }
  const evidence = ViolationEvidenceSchema.safeParse(violation.evidence);
  if (!evidence.success) {
    const [issue] = evidence.error.issues;
    throw new InvalidViolationError(
      `evidence.${issue?.path.join(".") ?? ""}`,
      issue?.message ?? "invalid evidence",
    );
  }
  if (evidence.data.count < evidence.data.limit) return { action: "below_limit" };
  const reason = violation.reason?.trim() || describeViolation(violation.condition, evidence.data);
  if (reason.length > MAX_BAN_REASON_LENGTH) {
    throw new InvalidViolationError(
      "reason",
      `expected at most ${MAX_BAN_REASON_LENGTH} characters`,
    );
  }

  const { now } = violation;
  return await db.transaction(async (tx) => {
    await lockSubject(tx, subject.value);
    const active = await findActiveBan(tx, subject.value, now);
    if (active !== undefined) {
      logger.debug("Kept ban {banId} of {subject}; a new {condition} violation does not stack", {
        banId: active.id,
        subject: describeSubject(subject.value),
        condition: violation.condition,
      });
      return { action: "already_banned", ban: active } as const;
    }
    const ban = await insertBan(tx, {
      subject: subject.value,
      condition: violation.condition,
      reason,
      evidence: evidence.data,
      createdBy: "auto",
      now,
    });
    const domainBan =
      subject.value.kind === "topic"
        ? await banDomainForTopicBans(tx, subject.value.domain, settings, now)
        : null;
    return { action: "banned", ban, domainBan } as const;
  });
}

/** An administrator's ban of a domain or topic. */
export interface AdminBanInput {
  subject: BanSubjectInput;
  reason: string;
  /** A time, null for permanent, or undefined for the duration of the escalation level. */
  expiresAt?: Date | null | undefined;
  /** Free-form notes the administrator attaches as evidence. */
  evidence?: Record<string, unknown> | undefined;
}

/**
 * Bans a subject with condition `admin`. The level follows the escalation ladder like automatic
 * bans; fails with `exists` when an active ban already covers the subject.
 */
export async function createAdminBan(
  db: DatabaseLike,
  input: AdminBanInput,
  settings: BanSettings,
  now: Date,
): Promise<BanResult<{ ban: Ban; domainBan: Ban | null }>> {
  const subject = checkSubject(input.subject);
  if (!subject.ok) return subject;
  const reason = input.reason.trim();
  if (reason === "") return invalidBan("reason", "a ban needs a reason for the audit trail");
  if (reason.length > MAX_BAN_REASON_LENGTH) {
    return invalidBan("reason", `expected at most ${MAX_BAN_REASON_LENGTH} characters`);
  }
  if (input.expiresAt != null && input.expiresAt.getTime() <= now.getTime()) {
    return invalidBan("until", "expected a time in the future");
  }

  return await db.transaction(async (tx) => {
    await lockSubject(tx, subject.value);
    const active = await findActiveBan(tx, subject.value, now);
    if (active !== undefined)
      return { ok: false, failure: { kind: "exists", ban: active } } as const;
    const ban = await insertBan(tx, {
      subject: subject.value,
      condition: "admin",
      reason,
      evidence: input.evidence ?? {},
      createdBy: "admin",
      expiresAt: input.expiresAt,
      now,
    });
    const domainBan =
      subject.value.kind === "topic"
        ? await banDomainForTopicBans(tx, subject.value.domain, settings, now)
        : null;
    return { ok: true, value: { ban, domainBan } } as const;
  });
}

/** Locks a ban and returns it, or a failure when it is unknown or no longer active at `now`. */
async function lockActiveBan(tx: DatabaseLike, id: string, now: Date): Promise<BanResult<Ban>> {
  const [ban] = await tx.select().from(bans).where(eq(bans.id, id)).for("update");
  if (ban === undefined) return { ok: false, failure: { kind: "not_found", id } };
  const [active] = await tx
    .select({ id: bans.id })
    .from(bans)
    .where(and(eq(bans.id, id), activeAt(now)));
  if (active === undefined) return { ok: false, failure: { kind: "ended", ban } };
  return { ok: true, value: ban };
}

function checkChangeReason(reason: string): BanResult<string> {
  const trimmed = reason.trim();
  if (trimmed === "") return invalidBan("reason", "expected a reason for the audit trail");
  if (trimmed.length > MAX_BAN_REASON_LENGTH) {
    return invalidBan("reason", `expected at most ${MAX_BAN_REASON_LENGTH} characters`);
  }
  return { ok: true, value: trimmed };
}

/**
 * Ends an active ban now. A deny rule that the ban created is lifted with it. Fails with `ended`
 * for a ban already lifted or expired.
 */
export async function liftBan(
  db: DatabaseLike,
  id: string,
  actor: "admin" | "auto",
  reason: string,
  now: Date,
): Promise<BanResult<Ban>> {
  const checked = checkChangeReason(reason);
  if (!checked.ok) return checked;

  return await db.transaction(async (tx) => {
    const locked = await lockActiveBan(tx, id, now);
    if (!locked.ok) return locked;
    const before = locked.value;
    const [after] = await tx
      .update(bans)
      .set({ liftedAt: now, liftedBy: actor, liftReason: checked.value, updatedAt: now })
      .where(eq(bans.id, id))
      .returning();
    if (after === undefined) throw new Error(`Ban ${id} vanished while locked`);

    if (before.ruleId !== null) {
      const lifted = await liftDomainRule(tx, before.ruleId, actor);
      // An administrator may have lifted the rule already; the ban still ends.
      if (!lifted.ok && lifted.failure.kind !== "not_found") {
        throw new Error(
          `Cannot lift deny rule ${before.ruleId} of ban ${id}: ${JSON.stringify(lifted.failure)}`,
        );
      }
    }
    await writeBanEvents(tx, [
      { type: "lifted", actor, reason: checked.value, before, after, at: now },
    ]);
    await bumpRulesVersion(tx);
    logger.info("Lifted ban {banId} of {domain} by {actor}: {reason}", {
      banId: id,
      domain: after.topic ?? after.domain,
      actor,
      reason: checked.value,
    });
    return { ok: true, value: after } as const;
  });
}

/**
 * Moves the expiry of an active ban later, to `until` or to never (`"permanent"`). Fails with
 * `invalid` (field `until`) when `until` is not after both `now` and the current expiry.
 */
export async function extendBan(
  db: DatabaseLike,
  id: string,
  until: Date | "permanent",
  actor: "admin" | "auto",
  reason: string,
  now: Date,
): Promise<BanResult<Ban>> {
  const checked = checkChangeReason(reason);
  if (!checked.ok) return checked;

  return await db.transaction(async (tx) => {
    const locked = await lockActiveBan(tx, id, now);
    if (!locked.ok) return locked;
    const before = locked.value;
    if (before.expiresAt === null) {
      return invalidBan("until", "the ban is already permanent; nothing to extend");
    }
    if (
      until !== "permanent" &&
      until.getTime() <= Math.max(now.getTime(), before.expiresAt.getTime())
    ) {
      return invalidBan(
        "until",
        `expected a time after the current expiry ${before.expiresAt.toISOString()}; to end the ban sooner, lift it`,
      );
    }
    const expiresAt = until === "permanent" ? null : until;
    const [after] = await tx
      .update(bans)
      .set({ expiresAt, updatedAt: now })
      .where(eq(bans.id, id))
      .returning();
    if (after === undefined) throw new Error(`Ban ${id} vanished while locked`);
    await writeBanEvents(tx, [
      { type: "extended", actor, reason: checked.value, before, after, at: now },
    ]);
    await bumpRulesVersion(tx);
    logger.info("Extended ban {banId} of {domain} to {expiresAt} by {actor}: {reason}", {
      banId: id,
      domain: after.topic ?? after.domain,
      expiresAt: expiresAt?.toISOString() ?? "permanent",
      actor,
      reason: checked.value,
    });
    return { ok: true, value: after } as const;
  });
}

/**
 * Records the end of every ban whose expiry has passed at `now`, each with an `expired` event,
 * and returns them. Engines already ignore a ban once its expiry passes, so this keeps the list of
 * open bans short and the audit trail complete. The worker role runs it every minute.
 */
export async function expireBans(db: DatabaseLike, now: Date): Promise<Ban[]> {
  return await db.transaction(async (tx) => {
    const due = await tx
      .select()
      .from(bans)
      .where(and(isNull(bans.liftedAt), isNull(bans.expiredAt), lte(bans.expiresAt, now)))
      .for("update", { skipLocked: true });
    if (due.length === 0) return [];

    const expired: Ban[] = [];
    const events: BanEvent[] = [];
    for (const before of due) {
      const [after] = await tx
        .update(bans)
        .set({ expiredAt: now, updatedAt: now })
        .where(eq(bans.id, before.id))
        .returning();
      if (after === undefined) throw new Error(`Ban ${before.id} vanished while locked`);
      expired.push(after);
      events.push({ type: "expired", actor: "expiry", before, after, at: now });
    }
    await writeBanEvents(tx, events);
    await bumpRulesVersion(tx);
    logger.info("Recorded the expiry of {count} bans", { count: expired.length });
    return expired;
  });
}
