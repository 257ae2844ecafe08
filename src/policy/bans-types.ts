/**
 * Types, constants and input checks of automatic bans: the escalation ladder, the subjects a ban
 * covers and the evidence a violation carries.
 */
import { z } from "zod";
import type { Config } from "../config.ts";
import { type BanCondition, type BanKind, type BanRow, MAX_BAN_LEVEL } from "../db/schema/index.ts";
import { canonicalRuleDomain, InvalidHostError } from "./domain.ts";

export type Ban = BanRow;

const DAY_MS = 86_400_000;

/**
 * Duration of a ban by escalation level: 1 day, 7 days, 30 days. Level {@link MAX_BAN_LEVEL}
 * ("trust broken") is permanent and has no entry.
 */
export const BAN_DURATION_MS: Readonly<Record<number, number>> = {
  1: DAY_MS,
  2: 7 * DAY_MS,
  3: 30 * DAY_MS,
};

/**
 * Bans of the same subject that started within this many days before a new one raise its level.
 * Lifted bans do not count, so an administrator's lift also forgives the offence.
 */
export const ESCALATION_LOOKBACK_DAYS = 365;

/** Maximum length of a ban's reason and of the reason of a lift or extension. */
export const MAX_BAN_REASON_LENGTH = 1000;

/** Maximum number of samples kept in a ban's evidence. */
export const MAX_EVIDENCE_SAMPLES = 20;

/** Returns the expiry of a ban of `level` that starts at `startsAt`, or null for a permanent one. */
export function banExpiry(level: number, startsAt: Date): Date | null {
  if (level >= MAX_BAN_LEVEL) return null;
  const duration = BAN_DURATION_MS[level];
  if (duration === undefined) throw new RangeError(`Invalid ban level ${level}; expected 1 to 4`);
  return new Date(startsAt.getTime() + duration);
}

/** Returns the level of a new ban of a subject that had `priorBans` counted bans before it. */
export function escalationLevel(priorBans: number): number {
  return Math.min(priorBans + 1, MAX_BAN_LEVEL);
}

/** The subject of a ban as callers name it; {@link checkSubject} makes it canonical. */
export type BanSubjectInput =
  | { kind: "domain"; domain: string }
  | { kind: "topic"; domain: string; topic: string };

/**
 * A subject with a canonical node host and, for topics, `<Pepeunit domain>/<unit node uuid>` in
 * lower case.
 */
export interface BanSubject {
  kind: BanKind;
  domain: string;
  topic: string | null;
}

/** Settings of the rule that turns topic bans into a domain ban. */
export interface BanSettings {
  /** Topic bans of one domain within the window that cause a domain ban; 0 turns the rule off. */
  topicBansForDomain: number;
  topicBansWindowSeconds: number;
}

/** Returns the settings that `PU_NODE_BAN_TOPIC_BANS_*` describe. */
export function banSettingsFromConfig(config: Pick<Config, "bans">): BanSettings {
  return {
    topicBansForDomain: config.bans.topicBansForDomain.count,
    topicBansWindowSeconds: config.bans.topicBansForDomain.windowSeconds,
  };
}

/** Conditions that a detector or the bridge measures; `admin` bans go through the REST API. */
export type ViolationCondition = Exclude<BanCondition, "admin" | "topic_bans">;

const isoTime = z.iso.datetime({ offset: true, error: "expected an ISO 8601 time" });

/** The measured numbers behind an automatic ban, stored in `bans.evidence`. */
export const ViolationEvidenceSchema = z
  .object({
    /**
     * Events counted in the window when the caller reported the violation; for `bridged_mps`,
     * the measured messages per second.
     */
    count: z.number().nonnegative(),
    /** Length of the window in seconds. */
    windowSeconds: z.number().positive(),
    /** The threshold: the condition is met once `count` reaches it. */
    limit: z.number().positive(),
    /** Times of the first and last counted event. */
    firstSeenAt: isoTime,
    lastSeenAt: isoTime,
    /** A few of the counted events, newest last; their fields depend on the condition. */
    samples: z
      .array(z.record(z.string(), z.unknown()))
      .max(MAX_EVIDENCE_SAMPLES, `expected at most ${MAX_EVIDENCE_SAMPLES} samples`),
  })
  .catchall(z.unknown());
export type ViolationEvidence = z.infer<typeof ViolationEvidenceSchema>;

/** One measured violation of a condition by a subject. */
export interface Violation {
  subject: BanSubjectInput;
  condition: ViolationCondition;
  evidence: ViolationEvidence;
  /** Text for the administrator; a description of the evidence when omitted. */
  reason?: string | undefined;
  /** The clock of the decision; tests move it. */
  now: Date;
}

/** An expected failure of a ban operation; the REST API maps each kind to one status. */
export type BanFailure =
  | { kind: "invalid"; field: string; message: string }
  | { kind: "not_found"; id: string }
  | { kind: "ended"; ban: Ban }
  | { kind: "exists"; ban: Ban };

export type BanResult<T> = { ok: true; value: T } | { ok: false; failure: BanFailure };

export function invalidBan(field: string, message: string): BanResult<never> {
  return { ok: false, failure: { kind: "invalid", field, message } };
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Checks a subject and returns it in canonical form. */
export function checkSubject(input: BanSubjectInput): BanResult<BanSubject> {
  let domain: string;
  try {
    domain = canonicalRuleDomain(input.domain);
  } catch (error) {
    if (!(error instanceof InvalidHostError)) throw error;
    return invalidBan("domain", error.reason);
  }
  if (input.kind === "domain") return { ok: true, value: { kind: "domain", domain, topic: null } };

  const slash = input.topic.indexOf("/");
  const topicRule =
    "expected a topic <domain>/<unit node uuid>, such as unit.example.com/9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10";
  if (slash === -1) return invalidBan("topic", topicRule);
  let topicDomain: string;
  try {
    topicDomain = canonicalRuleDomain(input.topic.slice(0, slash));
  } catch (error) {
    if (!(error instanceof InvalidHostError)) throw error;
    return invalidBan("topic", `${topicRule}; the domain is invalid: ${error.reason}`);
  }
  const unitNode = input.topic.slice(slash + 1).toLowerCase();
  if (!UUID_PATTERN.test(unitNode)) return invalidBan("topic", topicRule);
  // The topic's first level is the publisher's Pepeunit domain, which may differ from the host
  // of its node (`domain`), so the two are not compared.
  return { ok: true, value: { kind: "topic", domain, topic: `${topicDomain}/${unitNode}` } };
}

/** Returns a subject as text for logs and messages. */
export function describeSubject(subject: BanSubject): string {
  return subject.topic === null ? `domain ${subject.domain}` : `topic ${subject.topic}`;
}

const CONDITION_TEXT: Record<BanCondition, string> = {
  inbound_rate: "inbox deliveries rejected with 429 rate_limited",
  signature_failures: "inbox deliveries that failed signature verification (401)",
  invalid_payloads: "inbox deliveries rejected as invalid (400, 413 or 415)",
  bridged_mps: "bridged MQTT messages per second",
  topic_bans: "topic bans",
  admin: "an administrator's decision",
};

/** Returns a violation's evidence as a reason, such as "120 inbox deliveries ... within 600 s". */
export function describeViolation(condition: BanCondition, evidence: ViolationEvidence): string {
  if (condition === "bridged_mps") {
    return `${evidence.count} bridged MQTT messages per second over ${evidence.windowSeconds} s (limit ${evidence.limit})`;
  }
  return `${evidence.count} ${CONDITION_TEXT[condition]} within ${evidence.windowSeconds} s (limit ${evidence.limit})`;
}
