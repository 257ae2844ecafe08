import { sql } from "drizzle-orm";
import {
  bigserial,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, sqlList, updatedAt } from "./common.ts";

/** A ban covers a whole remote host (`domain`) or one UnitNode topic of it (`topic`). */
export const BAN_KINDS = ["domain", "topic"] as const;
export type BanKind = (typeof BAN_KINDS)[number];

/**
 * Causes of a ban: a detector's threshold (`inbound_rate`, `signature_failures`,
 * `invalid_payloads`), the bridge's message rate (`bridged_mps`), too many topic bans of one
 * domain (`topic_bans`), or an administrator's decision (`admin`).
 */
export const BAN_CONDITIONS = [
  "inbound_rate",
  "signature_failures",
  "invalid_payloads",
  "bridged_mps",
  "topic_bans",
  "admin",
] as const;
export type BanCondition = (typeof BAN_CONDITIONS)[number];

export const BAN_EVENT_TYPES = ["created", "extended", "lifted", "expired"] as const;
export type BanEventType = (typeof BAN_EVENT_TYPES)[number];

/** Escalation levels: 1 day, 7 days, 30 days, then permanent ("trust broken"). */
export const MIN_BAN_LEVEL = 1;
export const MAX_BAN_LEVEL = 4;

/**
 * Bans of remote hosts and topics. A row is never deleted: a ban ends when it is lifted
 * (`lifted_at`) or when the expiry sweep records that `expires_at` has passed (`expired_at`),
 * and ended bans count for the escalation of later ones.
 */
export const bans = pgTable(
  "bans",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    kind: text("kind", { enum: BAN_KINDS }).notNull(),
    /**
     * Canonical host (see `src/policy/domain.ts`) of the banned node; for a topic ban, the node
     * that publishes the topic. Its Pepeunit domain, the topic's first level, may differ.
     */
    domain: text("domain").notNull(),
    /** `<Pepeunit domain>/<unit node uuid>` for topic bans; null for domain bans. */
    topic: text("topic"),
    level: integer("level").notNull(),
    condition: text("condition", { enum: BAN_CONDITIONS }).notNull(),
    reason: text("reason").notNull(),
    /**
     * The measured numbers (`ViolationEvidence` in `src/policy/bans-types.ts`) of an automatic
     * ban, or the free-form object an administrator attached to a manual one.
     */
    evidence: jsonb("evidence").$type<Record<string, unknown>>().notNull(),
    /** `auto` for detectors and the bridge, `admin` for the REST API. */
    createdBy: text("created_by").notNull(),
    startsAt: timestamp("starts_at", { withTimezone: true }).notNull(),
    /** Null for a permanent ban. */
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    /** The permanent deny rule that a level 4 domain ban created, lifted together with the ban. */
    ruleId: uuid("rule_id"),
    /** When the expiry sweep recorded the end of the ban. */
    expiredAt: timestamp("expired_at", { withTimezone: true }),
    liftedAt: timestamp("lifted_at", { withTimezone: true }),
    liftedBy: text("lifted_by"),
    liftReason: text("lift_reason"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index("bans_subject_idx").on(table.kind, table.domain, table.topic, table.startsAt),
    index("bans_list_idx").on(table.startsAt, table.id),
    index("bans_open_idx")
      .on(table.kind, table.domain)
      .where(sql`${table.liftedAt} is null and ${table.expiredAt} is null`),
    check("bans_kind_check", sql`${table.kind} in (${sqlList(BAN_KINDS)})`),
    check(
      "bans_topic_check",
      sql`(${table.kind} = 'domain' and ${table.topic} is null) or (${table.kind} = 'topic' and ${table.topic} like '%_/_%')`,
    ),
    check(
      "bans_level_check",
      sql`${table.level} between ${sql.raw(String(MIN_BAN_LEVEL))} and ${sql.raw(String(MAX_BAN_LEVEL))}`,
    ),
    check("bans_condition_check", sql`${table.condition} in (${sqlList(BAN_CONDITIONS)})`),
    check("bans_reason_check", sql`length(btrim(${table.reason})) > 0`),
    check("bans_evidence_check", sql`jsonb_typeof(${table.evidence}) = 'object'`),
    check(
      "bans_lift_check",
      sql`(${table.liftedAt} is null) = (${table.liftedBy} is null) and (${table.liftedAt} is null) = (${table.liftReason} is null)`,
    ),
    check(
      "bans_domain_check",
      sql`${table.domain} = lower(${table.domain}) and length(${table.domain}) between 1 and 253`,
    ),
  ],
);

export type BanRow = typeof bans.$inferSelect;

/** The fields of a ban as stored in the `before` and `after` of an audit event. */
export type BanSnapshot = Omit<
  BanRow,
  "startsAt" | "expiresAt" | "expiredAt" | "liftedAt" | "createdAt" | "updatedAt"
> & {
  startsAt: string;
  expiresAt: string | null;
  expiredAt: string | null;
  liftedAt: string | null;
  createdAt: string;
  updatedAt: string;
};

/** Audit trail of bans: every creation, extension, lift and expiry, with actor and snapshots. */
export const banEvents = pgTable(
  "ban_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    banId: uuid("ban_id").notNull(),
    kind: text("kind", { enum: BAN_KINDS }).notNull(),
    domain: text("domain").notNull(),
    topic: text("topic"),
    type: text("type", { enum: BAN_EVENT_TYPES }).notNull(),
    /** `auto`, `admin`, or `expiry` for the sweep of expired bans. */
    actor: text("actor").notNull(),
    /** The administrator's reason for a lift or an extension. */
    reason: text("reason"),
    before: jsonb("before").$type<BanSnapshot>(),
    after: jsonb("after").$type<BanSnapshot>(),
    /** The time of the change by the clock of the service call, which tests move. */
    createdAt: createdAt(),
  },
  (table) => [
    index("ban_events_ban_idx").on(table.banId, table.id),
    index("ban_events_domain_idx").on(table.domain, table.id),
    check("ban_events_type_check", sql`${table.type} in (${sqlList(BAN_EVENT_TYPES)})`),
    check(
      "ban_events_snapshot_check",
      sql`(${table.before} is null or jsonb_typeof(${table.before}) = 'object') and (${table.after} is null or jsonb_typeof(${table.after}) = 'object')`,
    ),
  ],
);

export type BanEventRow = typeof banEvents.$inferSelect;
