/**
 * Domain rules in PostgreSQL: create, update, lift and expire them. Every write runs in one
 * transaction with its audit event in `domain_rule_events` and a bump of `domain_rules_version`,
 * so that policy engines in every process reload.
 */
import { and, asc, desc, eq, inArray, lte, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  type DomainRuleCreator,
  type DomainRuleEventRow,
  type DomainRuleEventType,
  type DomainRuleKind,
  type DomainRuleRow,
  type DomainRuleSnapshot,
  domainRuleEvents,
  domainRules,
  domainRulesVersion,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { canonicalRuleDomain, InvalidHostError } from "./domain.ts";
import type { RuleSeverity } from "./types.ts";

const logger = getNodeLogger("policy", "rules");

export type DomainRule = DomainRuleRow;

export const MAX_REASON_LENGTH = 1000;
export const MAX_PUBLIC_COMMENT_LENGTH = 1000;

/** Rows per statement in bulk writes and look-ups, well below PostgreSQL's 65,535 parameters. */
export const WRITE_BATCH_SIZE = 1000;

/** Fields of a new rule, as an administrator or an import gives them. */
export interface DomainRuleInput {
  domain: string;
  kind: DomainRuleKind;
  severity?: RuleSeverity | null | undefined;
  includeSubdomains?: boolean | undefined;
  reason?: string | null | undefined;
  publicComment?: string | null | undefined;
  expiresAt?: Date | null | undefined;
}

/** Changeable fields of a rule. Domain and kind are fixed; a different one is a new rule. */
export type DomainRulePatch = Partial<
  Pick<DomainRuleInput, "severity" | "includeSubdomains" | "reason" | "publicComment" | "expiresAt">
>;

/** An expected failure of a rule write; the REST API maps each kind to one status. */
export type RuleFailure =
  | { kind: "invalid"; field: string; message: string }
  | { kind: "not_found"; id: string }
  | { kind: "exists"; rule: DomainRule };

export type RuleResult<T> = { ok: true; value: T } | { ok: false; failure: RuleFailure };

/** The checked, canonical fields of a rule, ready to store. */
export interface RuleFields {
  domain: string;
  kind: DomainRuleKind;
  severity: RuleSeverity | null;
  includeSubdomains: boolean;
  reason: string | null;
  publicComment: string | null;
  expiresAt: Date | null;
}

function invalid(field: string, message: string): RuleResult<never> {
  return { ok: false, failure: { kind: "invalid", field, message } };
}

/** Blank text counts as absent, so `""` clears an optional text field. */
function textOrNull(value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  const trimmed = value.trim();
  return trimmed === "" ? null : trimmed;
}

/**
 * Checks the fields of a rule and returns them in canonical form: the domain canonical, blank
 * texts null. `now` is the time an expiry must lie after.
 */
export function checkRuleFields(input: DomainRuleInput, now: Date): RuleResult<RuleFields> {
  let domain: string;
  try {
    domain = canonicalRuleDomain(input.domain);
  } catch (error) {
    if (error instanceof InvalidHostError) return invalid("domain", error.reason);
    throw error;
  }

  const severity = input.severity ?? null;
  if (input.kind === "deny" && severity === null) {
    return invalid("severity", "a deny rule needs a severity: suspend or reject_content");
  }
  if (input.kind === "allow" && severity !== null) {
    return invalid("severity", "an allow rule has no severity; remove the field");
  }

  const reason = textOrNull(input.reason);
  if (input.kind === "deny" && reason === null) {
    return invalid("reason", "a deny rule needs a reason for the audit trail");
  }
  if (reason !== null && reason.length > MAX_REASON_LENGTH) {
    return invalid("reason", `expected at most ${MAX_REASON_LENGTH} characters`);
  }
  const publicComment = textOrNull(input.publicComment);
  if (publicComment !== null && publicComment.length > MAX_PUBLIC_COMMENT_LENGTH) {
    return invalid("publicComment", `expected at most ${MAX_PUBLIC_COMMENT_LENGTH} characters`);
  }

  const expiresAt = input.expiresAt ?? null;
  if (expiresAt !== null && expiresAt.getTime() <= now.getTime()) {
    return invalid(
      "expiresAt",
      "expected a time in the future; to end a rule now, lift it with DELETE",
    );
  }

  return {
    ok: true,
    value: {
      domain,
      kind: input.kind,
      severity,
      includeSubdomains: input.includeSubdomains ?? true,
      reason,
      publicComment,
      expiresAt,
    },
  };
}

/** Returns the rule as stored in the `before` and `after` of an audit event. */
export function snapshotOf(rule: DomainRule): DomainRuleSnapshot {
  return {
    ...rule,
    expiresAt: rule.expiresAt?.toISOString() ?? null,
    createdAt: rule.createdAt.toISOString(),
    updatedAt: rule.updatedAt.toISOString(),
  };
}

/** One change of one rule, for the audit trail. */
export interface RuleEvent {
  type: DomainRuleEventType;
  actor: string;
  before: DomainRule | null;
  after: DomainRule | null;
}

/** Adds audit events; call it inside the transaction of the changes it records. */
export async function writeRuleEvents(
  tx: DatabaseLike,
  events: readonly RuleEvent[],
): Promise<void> {
  const rows = events.map((event) => {
    const rule = event.after ?? event.before;
    if (rule === null) throw new Error("A rule event needs the rule before or after the change");
    return {
      ruleId: rule.id,
      domain: rule.domain,
      kind: rule.kind,
      type: event.type,
      actor: event.actor,
      before: event.before === null ? null : snapshotOf(event.before),
      after: event.after === null ? null : snapshotOf(event.after),
    };
  });
  for (let start = 0; start < rows.length; start += WRITE_BATCH_SIZE) {
    await tx.insert(domainRuleEvents).values(rows.slice(start, start + WRITE_BATCH_SIZE));
  }
}

/**
 * Increments the rules version; call it inside the transaction of every rule change. The row
 * lock it takes is held until commit, so versions become visible in commit order.
 */
export async function bumpRulesVersion(tx: DatabaseLike): Promise<void> {
  await tx
    .insert(domainRulesVersion)
    .values({ id: 1, version: 1 })
    .onConflictDoUpdate({
      target: domainRulesVersion.id,
      set: { version: sql`${domainRulesVersion.version} + 1`, updatedAt: sql`now()` },
    });
}

/** Returns the current rules version; 0 before the first change. */
export async function readRulesVersion(db: DatabaseLike): Promise<number> {
  const [row] = await db
    .select({ version: domainRulesVersion.version })
    .from(domainRulesVersion)
    .where(eq(domainRulesVersion.id, 1));
  return row?.version ?? 0;
}

/** Creates a rule; fails with `exists` when the domain already has a rule of that kind. */
export async function createDomainRule(
  db: DatabaseLike,
  input: DomainRuleInput,
  createdBy: DomainRuleCreator,
  now = new Date(),
): Promise<RuleResult<DomainRule>> {
  const checked = checkRuleFields(input, now);
  if (!checked.ok) return checked;
  const fields = checked.value;

  return await db.transaction(async (tx) => {
    const [created] = await tx
      .insert(domainRules)
      .values({ ...fields, createdBy })
      .onConflictDoNothing({ target: [domainRules.domain, domainRules.kind] })
      .returning();
    if (created === undefined) {
      const [existing] = await tx
        .select()
        .from(domainRules)
        .where(and(eq(domainRules.domain, fields.domain), eq(domainRules.kind, fields.kind)));
      if (existing === undefined) {
        // The conflicting rule was lifted between the insert and the select.
        throw new Error(`Rule for ${fields.domain} conflicted and then disappeared; retry`);
      }
      return { ok: false, failure: { kind: "exists", rule: existing } } as const;
    }
    await writeRuleEvents(tx, [
      { type: "created", actor: createdBy, before: null, after: created },
    ]);
    await bumpRulesVersion(tx);
    logger.info("Created {kind} rule {ruleId} for {domain} by {actor}", {
      kind: created.kind,
      ruleId: created.id,
      domain: created.domain,
      actor: createdBy,
    });
    return { ok: true, value: created } as const;
  });
}

/** Changes the severity, scope, texts or expiry of a rule. */
export async function updateDomainRule(
  db: DatabaseLike,
  id: string,
  patch: DomainRulePatch,
  actor: DomainRuleCreator,
  now = new Date(),
): Promise<RuleResult<DomainRule>> {
  return await db.transaction(async (tx) => {
    const [before] = await tx
      .select()
      .from(domainRules)
      .where(eq(domainRules.id, id))
      .for("update");
    if (before === undefined) return { ok: false, failure: { kind: "not_found", id } } as const;

    const merged: DomainRuleInput = {
      domain: before.domain,
      kind: before.kind,
      severity: patch.severity === undefined ? before.severity : patch.severity,
      includeSubdomains: patch.includeSubdomains ?? before.includeSubdomains,
      reason: patch.reason === undefined ? before.reason : patch.reason,
      publicComment: patch.publicComment === undefined ? before.publicComment : patch.publicComment,
      expiresAt: patch.expiresAt === undefined ? before.expiresAt : patch.expiresAt,
    };
    // An unchanged expiry that has passed in the meantime is not the caller's mistake.
    const checkTime =
      patch.expiresAt === undefined && before.expiresAt !== null ? new Date(0) : now;
    const checked = checkRuleFields(merged, checkTime);
    if (!checked.ok) return checked;

    const [after] = await tx
      .update(domainRules)
      .set({ ...checked.value, updatedAt: sql`now()` })
      .where(eq(domainRules.id, id))
      .returning();
    if (after === undefined) throw new Error(`Rule ${id} vanished while locked`);
    await writeRuleEvents(tx, [{ type: "updated", actor, before, after }]);
    await bumpRulesVersion(tx);
    logger.info("Updated {kind} rule {ruleId} for {domain} by {actor}", {
      kind: after.kind,
      ruleId: id,
      domain: after.domain,
      actor,
    });
    return { ok: true, value: after } as const;
  });
}

/** Lifts (deletes) a rule; its audit events stay. */
export async function liftDomainRule(
  db: DatabaseLike,
  id: string,
  actor: DomainRuleCreator,
): Promise<RuleResult<DomainRule>> {
  return await db.transaction(async (tx) => {
    const [lifted] = await tx.delete(domainRules).where(eq(domainRules.id, id)).returning();
    if (lifted === undefined) return { ok: false, failure: { kind: "not_found", id } } as const;
    await writeRuleEvents(tx, [{ type: "lifted", actor, before: lifted, after: null }]);
    await bumpRulesVersion(tx);
    logger.info("Lifted {kind} rule {ruleId} for {domain} by {actor}", {
      kind: lifted.kind,
      ruleId: id,
      domain: lifted.domain,
      actor,
    });
    return { ok: true, value: lifted } as const;
  });
}

/**
 * Deletes the rules whose expiry has passed, each with an `expired` event, and returns them.
 * Engines already ignore expired rules, so this only keeps the table and the lists clean. The
 * worker role runs it every minute.
 */
export async function expireDomainRules(db: DatabaseLike, now = new Date()): Promise<DomainRule[]> {
  return await db.transaction(async (tx) => {
    const expired = await tx.delete(domainRules).where(lte(domainRules.expiresAt, now)).returning();
    if (expired.length === 0) return [];
    await writeRuleEvents(
      tx,
      expired.map((rule) => ({ type: "expired", actor: "expiry", before: rule, after: null })),
    );
    await bumpRulesVersion(tx);
    logger.info("Removed {count} expired domain rules", { count: expired.length });
    return expired;
  });
}

export async function getDomainRule(db: DatabaseLike, id: string): Promise<DomainRule | undefined> {
  const [rule] = await db.select().from(domainRules).where(eq(domainRules.id, id));
  return rule;
}

/** Returns every rule, expired ones included; engines filter by time when they decide. */
export async function loadAllDomainRules(db: DatabaseLike): Promise<DomainRule[]> {
  return await db.select().from(domainRules);
}

/**
 * Returns the rules of `kind` for the given canonical domains, for imports. With `lock`, the rows
 * stay locked until the surrounding transaction ends.
 */
export async function findDomainRules(
  db: DatabaseLike,
  domains: readonly string[],
  kind: DomainRuleKind,
  lock = false,
): Promise<DomainRule[]> {
  const found: DomainRule[] = [];
  for (let start = 0; start < domains.length; start += WRITE_BATCH_SIZE) {
    const batch = domains.slice(start, start + WRITE_BATCH_SIZE);
    const query = db
      .select()
      .from(domainRules)
      .where(and(inArray(domainRules.domain, batch), eq(domainRules.kind, kind)));
    found.push(...(lock ? await query.for("update") : await query));
  }
  return found;
}

/** Sort key of a rule in lists and page cursors: domain, a space (never in a domain), kind. */
export function ruleSortKey(rule: Pick<DomainRule, "domain" | "kind">): string {
  return `${rule.domain} ${rule.kind}`;
}

/** Lists rules by domain and kind, after the sort key `after` (see {@link ruleSortKey}). */
export async function listDomainRules(
  db: DatabaseLike,
  query: {
    limit: number;
    after?: string | undefined;
    kind?: DomainRuleKind | undefined;
    domain?: string | undefined;
  },
): Promise<DomainRule[]> {
  const conditions = [];
  if (query.kind !== undefined) conditions.push(eq(domainRules.kind, query.kind));
  if (query.domain !== undefined) conditions.push(eq(domainRules.domain, query.domain));
  if (query.after !== undefined) {
    const [afterDomain = "", afterKind = ""] = query.after.split(" ");
    conditions.push(
      sql`(${domainRules.domain}, ${domainRules.kind}) > (${afterDomain}, ${afterKind})`,
    );
  }
  return await db
    .select()
    .from(domainRules)
    .where(and(...conditions))
    .orderBy(asc(domainRules.domain), asc(domainRules.kind))
    .limit(query.limit);
}

/** Returns the audit events of a rule, newest first; they remain after the rule is lifted. */
export async function listDomainRuleEvents(
  db: DatabaseLike,
  ruleId: string,
  limit: number,
): Promise<DomainRuleEventRow[]> {
  return await db
    .select()
    .from(domainRuleEvents)
    .where(eq(domainRuleEvents.ruleId, ruleId))
    .orderBy(desc(domainRuleEvents.id))
    .limit(limit);
}
