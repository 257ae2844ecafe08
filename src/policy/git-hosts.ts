/**
 * Git host rules: which hosts the repository URLs of Repos may point at. Every write runs in one
 * transaction with its audit event in `git_host_rule_events`.
 *
 * While no allow rule exists, every host is accepted that no deny rule matches ("open"). The
 * first allow rule turns the rules into an allowlist, and removing the last one turns it back.
 * A matching deny rule rejects a host in both modes, also when an allow rule matches it too.
 *
 * Decisions read the rules from PostgreSQL on every check (one indexed query), so a change
 * applies at once in every process and no version counter is needed.
 */
import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
import { Counter } from "prom-client";
import type { DatabaseLike } from "../db/client.ts";
import {
  type GitHostRuleCreator,
  type GitHostRuleEventRow,
  type GitHostRuleEventType,
  type GitHostRuleKind,
  type GitHostRuleRow,
  type GitHostRuleSnapshot,
  gitHostRuleEvents,
  gitHostRules,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { canonicalRuleDomain, InvalidHostError, isIpAddress } from "./domain.ts";
import { parseRepositoryUrl } from "./repository-url.ts";

const logger = getNodeLogger("policy", "git-hosts");

export type GitHostRule = GitHostRuleRow;

export const MAX_GIT_HOST_REASON_LENGTH = 1000;

/** `open` while no allow rule exists; `allowlist` from the first allow rule on. */
export type GitHostMode = "open" | "allowlist";

/** Fields of a new rule. */
export interface GitHostRuleInput {
  host: string;
  kind: GitHostRuleKind;
  includeSubdomains?: boolean | undefined;
  reason?: string | null | undefined;
}

/** Changeable fields of a rule. Host and kind are fixed; a different one is a new rule. */
export type GitHostRulePatch = Partial<Pick<GitHostRuleInput, "includeSubdomains" | "reason">>;

/** An expected failure of a rule write; the REST API maps each kind to one status. */
export type GitHostRuleFailure =
  | { kind: "invalid"; field: string; message: string }
  | { kind: "not_found"; id: string }
  | { kind: "exists"; rule: GitHostRule };

export type GitHostRuleResult<T> =
  | { ok: true; value: T }
  | { ok: false; failure: GitHostRuleFailure };

/** The fields of a rule that decisions use. */
export type GitHostRuleFields = Pick<
  GitHostRule,
  "id" | "host" | "kind" | "includeSubdomains" | "reason"
>;

/** The decision about one repository host. */
export interface GitHostDecision {
  allowed: boolean;
  /** Canonical host of the repository URL. */
  host: string;
  mode: GitHostMode;
  /** The rule that decided: the deny rule that matched, or the allow rule on an allowlist. */
  rule: GitHostRuleFields | null;
  /** Why, in words for the administrator and for API errors. */
  reason: string;
}

/**
 * Repositories rejected because of their host, by where they came from: `api` (a Repo created
 * or changed through the REST API), `peer` (a federated Repo) or `import` (a Pepeunit Repo).
 * It is registered in no registry here, because each node builds its own registry. The HTTP
 * metrics module (`src/http/metrics.ts`) adds it to that registry with `registerMetric`.
 */
export const deniedRepositoryCounter = new Counter({
  name: "pepeunit_node_git_host_denied_repos_total",
  help: "Repos not stored because the host of their repository URL is denied by a git host rule",
  labelNames: ["source"] as const,
  registers: [],
});

export type DeniedRepositorySource = "api" | "peer" | "import";

/** Counts one Repo rejected because of its git host. */
export function countDeniedRepository(source: DeniedRepositorySource): void {
  deniedRepositoryCounter.inc({ source });
}

function invalid(field: string, message: string): GitHostRuleResult<never> {
  return { ok: false, failure: { kind: "invalid", field, message } };
}

/** Blank text counts as absent, so `""` clears the reason of an allow rule. */
function textOrNull(value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  const trimmed = value.trim();
  return trimmed === "" ? null : trimmed;
}

/** Checks the fields of a rule and returns them in canonical form. */
export function checkGitHostRuleFields(
  input: GitHostRuleInput,
): GitHostRuleResult<Required<Omit<GitHostRuleInput, "reason">> & { reason: string | null }> {
  let host: string;
  try {
    host = canonicalRuleDomain(input.host);
  } catch (error) {
    if (error instanceof InvalidHostError) return invalid("host", error.reason);
    throw error;
  }
  const reason = textOrNull(input.reason);
  if (input.kind === "deny" && reason === null) {
    return invalid("reason", "a deny rule needs a reason; it is shown when a Repo is rejected");
  }
  if (reason !== null && reason.length > MAX_GIT_HOST_REASON_LENGTH) {
    return invalid("reason", `expected at most ${MAX_GIT_HOST_REASON_LENGTH} characters`);
  }
  return {
    ok: true,
    value: { host, kind: input.kind, includeSubdomains: input.includeSubdomains ?? true, reason },
  };
}

function snapshotOf(rule: GitHostRule): GitHostRuleSnapshot {
  return {
    ...rule,
    createdAt: rule.createdAt.toISOString(),
    updatedAt: rule.updatedAt.toISOString(),
  };
}

async function writeEvent(
  tx: DatabaseLike,
  type: GitHostRuleEventType,
  actor: GitHostRuleCreator,
  before: GitHostRule | null,
  after: GitHostRule | null,
): Promise<void> {
  const rule = after ?? before;
  if (rule === null) throw new Error("A git host rule event needs the rule before or after");
  await tx.insert(gitHostRuleEvents).values({
    ruleId: rule.id,
    host: rule.host,
    kind: rule.kind,
    type,
    actor,
    before: before === null ? null : snapshotOf(before),
    after: after === null ? null : snapshotOf(after),
  });
}

async function countAllowRules(tx: DatabaseLike): Promise<number> {
  const [row] = await tx
    .select({ count: sql<number>`count(*)::int` })
    .from(gitHostRules)
    .where(eq(gitHostRules.kind, "allow"));
  return row?.count ?? 0;
}

/** Creates a rule; fails with `exists` when the host already has a rule of that kind. */
export async function createGitHostRule(
  db: DatabaseLike,
  input: GitHostRuleInput,
  createdBy: GitHostRuleCreator,
): Promise<GitHostRuleResult<GitHostRule>> {
  const checked = checkGitHostRuleFields(input);
  if (!checked.ok) return checked;
  const fields = checked.value;

  return await db.transaction(async (tx) => {
    const [created] = await tx
      .insert(gitHostRules)
      .values({ ...fields, createdBy })
      .onConflictDoNothing({ target: [gitHostRules.host, gitHostRules.kind] })
      .returning();
    if (created === undefined) {
      const [existing] = await tx
        .select()
        .from(gitHostRules)
        .where(and(eq(gitHostRules.host, fields.host), eq(gitHostRules.kind, fields.kind)));
      if (existing === undefined) {
        // The conflicting rule was removed between the insert and the select.
        throw new Error(`Git host rule for ${fields.host} conflicted and then disappeared; retry`);
      }
      return { ok: false, failure: { kind: "exists", rule: existing } } as const;
    }
    await writeEvent(tx, "created", createdBy, null, created);
    logger.info("Created {kind} git host rule {ruleId} for {host} by {actor}", {
      kind: created.kind,
      ruleId: created.id,
      host: created.host,
      actor: createdBy,
    });
    if (created.kind === "allow" && (await countAllowRules(tx)) === 1) {
      logger.warn(
        "Git host rules are now an allowlist: Repos are accepted only from hosts with an allow rule, starting with {host}",
        { host: created.host },
      );
    }
    return { ok: true, value: created } as const;
  });
}

/** Changes whether a rule includes subdomains, or its reason. */
export async function updateGitHostRule(
  db: DatabaseLike,
  id: string,
  patch: GitHostRulePatch,
  actor: GitHostRuleCreator,
): Promise<GitHostRuleResult<GitHostRule>> {
  return await db.transaction(async (tx) => {
    const [before] = await tx
      .select()
      .from(gitHostRules)
      .where(eq(gitHostRules.id, id))
      .for("update");
    if (before === undefined) return { ok: false, failure: { kind: "not_found", id } } as const;

    const checked = checkGitHostRuleFields({
      host: before.host,
      kind: before.kind,
      includeSubdomains: patch.includeSubdomains ?? before.includeSubdomains,
      reason: patch.reason === undefined ? before.reason : patch.reason,
    });
    if (!checked.ok) return checked;

    const [after] = await tx
      .update(gitHostRules)
      .set({
        includeSubdomains: checked.value.includeSubdomains,
        reason: checked.value.reason,
        updatedAt: sql`now()`,
      })
      .where(eq(gitHostRules.id, id))
      .returning();
    if (after === undefined) throw new Error(`Git host rule ${id} vanished while locked`);
    await writeEvent(tx, "updated", actor, before, after);
    logger.info("Updated {kind} git host rule {ruleId} for {host} by {actor}", {
      kind: after.kind,
      ruleId: id,
      host: after.host,
      actor,
    });
    return { ok: true, value: after } as const;
  });
}

/** Removes (deletes) a rule; its audit events stay. */
export async function removeGitHostRule(
  db: DatabaseLike,
  id: string,
  actor: GitHostRuleCreator,
): Promise<GitHostRuleResult<GitHostRule>> {
  return await db.transaction(async (tx) => {
    const [removed] = await tx.delete(gitHostRules).where(eq(gitHostRules.id, id)).returning();
    if (removed === undefined) return { ok: false, failure: { kind: "not_found", id } } as const;
    await writeEvent(tx, "removed", actor, removed, null);
    logger.info("Removed {kind} git host rule {ruleId} for {host} by {actor}", {
      kind: removed.kind,
      ruleId: id,
      host: removed.host,
      actor,
    });
    if (removed.kind === "allow" && (await countAllowRules(tx)) === 0) {
      logger.warn(
        "Removed the last allow rule ({host}): git host rules are open again, and Repos are accepted from every host without a deny rule",
        { host: removed.host },
      );
    }
    return { ok: true, value: removed } as const;
  });
}

export async function getGitHostRule(
  db: DatabaseLike,
  id: string,
): Promise<GitHostRule | undefined> {
  const [rule] = await db.select().from(gitHostRules).where(eq(gitHostRules.id, id));
  return rule;
}

/** Sort key of a rule in lists and page cursors: host, a space (never in a host), kind. */
export function gitHostRuleSortKey(rule: Pick<GitHostRule, "host" | "kind">): string {
  return `${rule.host} ${rule.kind}`;
}

/** Lists rules by host and kind, after the sort key `after` (see {@link gitHostRuleSortKey}). */
export async function listGitHostRules(
  db: DatabaseLike,
  query: {
    limit: number;
    after?: string | undefined;
    kind?: GitHostRuleKind | undefined;
    host?: string | undefined;
  },
): Promise<GitHostRule[]> {
  const conditions = [];
  if (query.kind !== undefined) conditions.push(eq(gitHostRules.kind, query.kind));
  if (query.host !== undefined) conditions.push(eq(gitHostRules.host, query.host));
  if (query.after !== undefined) {
    const [afterHost = "", afterKind = ""] = query.after.split(" ");
    conditions.push(
      sql`(${gitHostRules.host}, ${gitHostRules.kind}) > (${afterHost}, ${afterKind})`,
    );
  }
  return await db
    .select()
    .from(gitHostRules)
    .where(and(...conditions))
    .orderBy(asc(gitHostRules.host), asc(gitHostRules.kind))
    .limit(query.limit);
}

/** Returns the audit events of a rule, newest first; they remain after the rule is removed. */
export async function listGitHostRuleEvents(
  db: DatabaseLike,
  ruleId: string,
  limit: number,
): Promise<GitHostRuleEventRow[]> {
  return await db
    .select()
    .from(gitHostRuleEvents)
    .where(eq(gitHostRuleEvents.ruleId, ruleId))
    .orderBy(desc(gitHostRuleEvents.id))
    .limit(limit);
}

/** Returns the canonical host followed by each parent domain; an IP address has no parents. */
export function hostAndParents(host: string): string[] {
  const hosts = [host];
  if (isIpAddress(host)) return hosts;
  let rest = host;
  for (let dot = rest.indexOf("."); dot !== -1; dot = rest.indexOf(".")) {
    rest = rest.slice(dot + 1);
    hosts.push(rest);
  }
  return hosts;
}

/**
 * Decides from a set of rules. `rules` must contain every rule for the host and its parents,
 * and `allowlist` is true when any allow rule exists at all. A rule matches the host it names,
 * and its subdomains when it includes them. Among matching deny rules the most specific wins.
 */
export function decideGitHost(
  host: string,
  rules: readonly GitHostRuleFields[],
  allowlist: boolean,
): GitHostDecision {
  const mode: GitHostMode = allowlist ? "allowlist" : "open";
  const candidates = hostAndParents(host);
  let deny: GitHostRuleFields | null = null;
  let allow: GitHostRuleFields | null = null;
  // Walks from the exact host to the top-level domain, so the first match is the most specific.
  for (const [index, candidate] of candidates.entries()) {
    for (const rule of rules) {
      if (rule.host !== candidate) continue;
      if (index > 0 && !rule.includeSubdomains) continue;
      if (rule.kind === "deny") deny ??= rule;
      else allow ??= rule;
    }
  }

  if (deny !== null) {
    return {
      allowed: false,
      host,
      mode,
      rule: deny,
      reason: `denied by the git host rule for ${deny.host}: ${deny.reason ?? "no reason given"}`,
    };
  }
  if (allowlist && allow === null) {
    return {
      allowed: false,
      host,
      mode,
      rule: null,
      reason: `${host} is not on this node's allowlist of git hosts; an administrator can add an allow rule for it`,
    };
  }
  return {
    allowed: true,
    host,
    mode,
    rule: allow,
    reason:
      allow === null
        ? "no git host rule matches the host"
        : `allowed by the git host rule for ${allow.host}`,
  };
}

const RULE_FIELDS = {
  id: gitHostRules.id,
  host: gitHostRules.host,
  kind: gitHostRules.kind,
  includeSubdomains: gitHostRules.includeSubdomains,
  reason: gitHostRules.reason,
};

/** Decides about a canonical host with the rules in the database now. */
export async function checkGitHost(db: DatabaseLike, host: string): Promise<GitHostDecision> {
  // One round trip: the rules of the host and its parents, plus any one allow rule, which shows
  // whether the rules are an allowlist. That extra rule never matches unless it is a candidate.
  const matching = db
    .select(RULE_FIELDS)
    .from(gitHostRules)
    .where(inArray(gitHostRules.host, hostAndParents(host)));
  const anyAllow = db
    .select(RULE_FIELDS)
    .from(gitHostRules)
    .where(eq(gitHostRules.kind, "allow"))
    .limit(1);
  const rules = await matching.unionAll(anyAllow);
  return decideGitHost(
    host,
    rules,
    rules.some((rule) => rule.kind === "allow"),
  );
}

/**
 * Parses a repository URL (see `src/policy/repository-url.ts`) and decides about its host.
 *
 * @throws {InvalidRepositoryUrlError} when `url` is not a repository URL in an accepted form.
 */
export async function checkRepositoryUrl(db: DatabaseLike, url: string): Promise<GitHostDecision> {
  return await checkGitHost(db, parseRepositoryUrl(url).host);
}

/** Every rule at once, for a run that checks many URLs (the Pepeunit import). */
export class GitHostRuleSet {
  readonly #rules: readonly GitHostRuleFields[];
  readonly #allowlist: boolean;

  constructor(rules: readonly GitHostRuleFields[]) {
    this.#rules = rules;
    this.#allowlist = rules.some((rule) => rule.kind === "allow");
  }

  /** Loads every rule from the database. */
  static async load(db: DatabaseLike): Promise<GitHostRuleSet> {
    return new GitHostRuleSet(await db.select(RULE_FIELDS).from(gitHostRules));
  }

  /**
   * Decides about the host of a repository URL.
   *
   * @throws {InvalidRepositoryUrlError} when `url` is not a repository URL in an accepted form.
   */
  checkRepositoryUrl(url: string): GitHostDecision {
    return decideGitHost(parseRepositoryUrl(url).host, this.#rules, this.#allowlist);
  }
}
