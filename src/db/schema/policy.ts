import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, sqlList, updatedAt } from "./common.ts";

/** `allow` lists a domain for allowlist mode; `deny` suspends it or rejects its content. */
export const DOMAIN_RULE_KINDS = ["allow", "deny"] as const;
export type DomainRuleKind = (typeof DOMAIN_RULE_KINDS)[number];

/** Severities of deny rules, strictest first; the same names as `RuleSeverity` of the policy. */
export const DOMAIN_RULE_SEVERITIES = ["suspend", "reject_content"] as const;

/** Who wrote a rule: an administrator through the API, a list import, or automatic defences. */
export const DOMAIN_RULE_CREATORS = ["admin", "import", "auto"] as const;
export type DomainRuleCreator = (typeof DOMAIN_RULE_CREATORS)[number];

export const DOMAIN_RULE_EVENT_TYPES = [
  "created",
  "updated",
  "lifted",
  "expired",
  "imported",
] as const;
export type DomainRuleEventType = (typeof DOMAIN_RULE_EVENT_TYPES)[number];

/** Allow and deny rules for remote domains; the policy engine keeps all of them in memory. */
export const domainRules = pgTable(
  "domain_rules",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** Canonical host (see `src/policy/domain.ts`): lower case, punycode, no port. */
    domain: text("domain").notNull(),
    kind: text("kind", { enum: DOMAIN_RULE_KINDS }).notNull(),
    /** Set on deny rules only. */
    severity: text("severity", { enum: DOMAIN_RULE_SEVERITIES }),
    includeSubdomains: boolean("include_subdomains").notNull().default(true),
    /** Why the rule exists, for the administrator and the audit trail; required on deny rules. */
    reason: text("reason"),
    /** Text that may be shown to other servers and users, like Mastodon's public comment. */
    publicComment: text("public_comment"),
    /** When the rule stops applying; null for a permanent rule. */
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    createdBy: text("created_by", { enum: DOMAIN_RULE_CREATORS }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex("domain_rules_domain_kind_unique").on(table.domain, table.kind),
    check("domain_rules_kind_check", sql`${table.kind} in (${sqlList(DOMAIN_RULE_KINDS)})`),
    check(
      "domain_rules_severity_check",
      sql`(${table.kind} = 'deny' and ${table.severity} in (${sqlList(DOMAIN_RULE_SEVERITIES)})) or (${table.kind} = 'allow' and ${table.severity} is null)`,
    ),
    check(
      "domain_rules_reason_check",
      sql`${table.kind} <> 'deny' or length(btrim(coalesce(${table.reason}, ''))) > 0`,
    ),
    check(
      "domain_rules_created_by_check",
      sql`${table.createdBy} in (${sqlList(DOMAIN_RULE_CREATORS)})`,
    ),
    check(
      "domain_rules_domain_check",
      sql`${table.domain} = lower(${table.domain}) and length(${table.domain}) between 1 and 253`,
    ),
  ],
);

export type DomainRuleRow = typeof domainRules.$inferSelect;
export type NewDomainRuleRow = typeof domainRules.$inferInsert;

/** The fields of a rule as stored in the `before` and `after` of an audit event. */
export type DomainRuleSnapshot = Omit<DomainRuleRow, "expiresAt" | "createdAt" | "updatedAt"> & {
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
};

/**
 * Audit trail of domain rules. Events outlive their rule (a lift deletes the rule), so `rule_id`
 * has no foreign key; `domain` and `kind` are kept for searches after the rule is gone.
 */
export const domainRuleEvents = pgTable(
  "domain_rule_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    ruleId: uuid("rule_id").notNull(),
    domain: text("domain").notNull(),
    kind: text("kind", { enum: DOMAIN_RULE_KINDS }).notNull(),
    type: text("type", { enum: DOMAIN_RULE_EVENT_TYPES }).notNull(),
    /** `admin`, `import`, `auto`, or `expiry` for the sweep of expired rules. */
    actor: text("actor").notNull(),
    before: jsonb("before").$type<DomainRuleSnapshot>(),
    after: jsonb("after").$type<DomainRuleSnapshot>(),
    createdAt: createdAt(),
  },
  (table) => [
    index("domain_rule_events_rule_idx").on(table.ruleId, table.id),
    index("domain_rule_events_domain_idx").on(table.domain),
    check(
      "domain_rule_events_type_check",
      sql`${table.type} in (${sqlList(DOMAIN_RULE_EVENT_TYPES)})`,
    ),
    check(
      "domain_rule_events_snapshot_check",
      sql`(${table.before} is null or jsonb_typeof(${table.before}) = 'object') and (${table.after} is null or jsonb_typeof(${table.after}) = 'object')`,
    ),
  ],
);

export type DomainRuleEventRow = typeof domainRuleEvents.$inferSelect;

/**
 * One row whose `version` grows with every committed change of `domain_rules`. Writers update it
 * in the same transaction, and the row lock orders them, so a reader that sees a version also
 * sees every rule change before it. Policy engines poll it to know when to reload.
 */
export const domainRulesVersion = pgTable(
  "domain_rules_version",
  {
    id: integer("id").primaryKey(),
    version: integer("version").notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [check("domain_rules_version_single_row", sql`${table.id} = 1`)],
);
