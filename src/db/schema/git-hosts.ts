import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  index,
  jsonb,
  pgTable,
  text,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, sqlList, updatedAt } from "./common.ts";

/** `allow` puts a git host on the allowlist; `deny` keeps Repos of that host out of the catalogue. */
export const GIT_HOST_RULE_KINDS = ["allow", "deny"] as const;
export type GitHostRuleKind = (typeof GIT_HOST_RULE_KINDS)[number];

/** Creator of a rule: an administrator through the API, or a list import. */
export const GIT_HOST_RULE_CREATORS = ["admin", "import"] as const;
export type GitHostRuleCreator = (typeof GIT_HOST_RULE_CREATORS)[number];

export const GIT_HOST_RULE_EVENT_TYPES = ["created", "updated", "removed"] as const;
export type GitHostRuleEventType = (typeof GIT_HOST_RULE_EVENT_TYPES)[number];

/**
 * Allow and deny rules for the hosts of Repo repository URLs. While at least one allow rule
 * exists, only allowed hosts are accepted; a matching deny rule rejects a host in every case.
 */
export const gitHostRules = pgTable(
  "git_host_rules",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    /** Canonical host (see `src/policy/domain.ts`): lower case, punycode, no port. */
    host: text("host").notNull(),
    kind: text("kind", { enum: GIT_HOST_RULE_KINDS }).notNull(),
    includeSubdomains: boolean("include_subdomains").notNull().default(true),
    /** Reason for the rule; required on deny rules, and shown in the error of a rejected Repo. */
    reason: text("reason"),
    createdBy: text("created_by", { enum: GIT_HOST_RULE_CREATORS }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex("git_host_rules_host_kind_unique").on(table.host, table.kind),
    // Finds whether any allow rule exists, which switches the rules to an allowlist.
    index("git_host_rules_kind_idx").on(table.kind),
    check("git_host_rules_kind_check", sql`${table.kind} in (${sqlList(GIT_HOST_RULE_KINDS)})`),
    check(
      "git_host_rules_reason_check",
      sql`${table.kind} <> 'deny' or length(btrim(coalesce(${table.reason}, ''))) > 0`,
    ),
    check(
      "git_host_rules_created_by_check",
      sql`${table.createdBy} in (${sqlList(GIT_HOST_RULE_CREATORS)})`,
    ),
    check(
      "git_host_rules_host_check",
      sql`${table.host} = lower(${table.host}) and length(${table.host}) between 1 and 253`,
    ),
  ],
);

export type GitHostRuleRow = typeof gitHostRules.$inferSelect;

/** The fields of a rule as stored in the `before` and `after` of an audit event. */
export type GitHostRuleSnapshot = Omit<GitHostRuleRow, "createdAt" | "updatedAt"> & {
  createdAt: string;
  updatedAt: string;
};

/**
 * Audit trail of git host rules. Events outlive their rule, because a removal deletes the rule,
 * so `rule_id` has no foreign key. `host` and `kind` are kept for searches after the rule is gone.
 */
export const gitHostRuleEvents = pgTable(
  "git_host_rule_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    ruleId: uuid("rule_id").notNull(),
    host: text("host").notNull(),
    kind: text("kind", { enum: GIT_HOST_RULE_KINDS }).notNull(),
    type: text("type", { enum: GIT_HOST_RULE_EVENT_TYPES }).notNull(),
    /** `admin` or `import`. */
    actor: text("actor").notNull(),
    before: jsonb("before").$type<GitHostRuleSnapshot>(),
    after: jsonb("after").$type<GitHostRuleSnapshot>(),
    createdAt: createdAt(),
  },
  (table) => [
    index("git_host_rule_events_rule_idx").on(table.ruleId, table.id),
    index("git_host_rule_events_host_idx").on(table.host),
    check(
      "git_host_rule_events_type_check",
      sql`${table.type} in (${sqlList(GIT_HOST_RULE_EVENT_TYPES)})`,
    ),
    check(
      "git_host_rule_events_snapshot_check",
      sql`(${table.before} is null or jsonb_typeof(${table.before}) = 'object') and (${table.after} is null or jsonb_typeof(${table.after}) = 'object')`,
    ),
  ],
);

export type GitHostRuleEventRow = typeof gitHostRuleEvents.$inferSelect;
