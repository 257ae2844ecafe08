/**
 * The policy engine: every domain rule and open domain ban in memory, indexed by domain, so one
 * decision costs a map look-up per label of the host. It reloads from PostgreSQL when
 * `domain_rules_version` changes, which every rule and ban write bumps.
 */
import type { FederationMode } from "../config.ts";
import type { DatabaseLike } from "../db/client.ts";
import { domainRules } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { type EngineBan, loadOpenDomainBans } from "./bans-queries.ts";
import { InvalidHostError, isIpAddress, parseHost } from "./domain.ts";
import { readRulesVersion } from "./rules.ts";
import type { PolicyDecision, PolicyEngine, RuleSeverity } from "./types.ts";

const logger = getNodeLogger("policy", "engine");

/** The fields of a rule that decisions use. */
export interface EngineRule {
  id: string;
  domain: string;
  kind: "allow" | "deny";
  severity: RuleSeverity | null;
  includeSubdomains: boolean;
  reason: string | null;
  expiresAt: Date | null;
}

export type { EngineBan };

/**
 * The allow and the deny rule of one domain, `(domain, kind)` being unique in the table, and
 * its domain ban as a `suspend` rule for the exact host.
 */
interface DomainEntry {
  allow?: EngineRule;
  deny?: EngineRule;
  ban?: EngineRule;
}

const ALLOW: PolicyDecision = { action: "allow" };

/** Lower is stricter. */
const SEVERITY_RANK: Record<RuleSeverity, number> = { suspend: 0, reject_content: 1 };

function isActive(rule: EngineRule | undefined, nowMs: number): rule is EngineRule {
  return rule !== undefined && (rule.expiresAt === null || rule.expiresAt.getTime() > nowMs);
}

/**
 * Decides from a fixed set of rules. Rules must carry canonical domains (as `domain_rules`
 * stores them); {@link replaceRules} swaps the whole set at once.
 *
 * A host matches a rule when it equals the rule's domain, or when the rule includes subdomains
 * and the host ends in `.` plus the domain. Among matching deny rules the strictest severity
 * wins, and the more specific domain breaks a tie. A deny rule wins over an allow rule in both
 * modes. In `allowlist` mode a host without a matching allow rule is suspended.
 */
export class DomainPolicyEngine implements PolicyEngine {
  readonly mode: FederationMode;
  #entries = new Map<string, DomainEntry>();
  #size = 0;

  constructor(
    mode: FederationMode,
    rules: readonly EngineRule[] = [],
    bans: readonly EngineBan[] = [],
  ) {
    this.mode = mode;
    this.replaceRules(rules, bans);
  }

  /** Number of rules and bans in memory, expired ones included. */
  get size(): number {
    return this.#size;
  }

  /**
   * Swaps the rules and domain bans. A ban acts as a `suspend` deny rule of its exact host (no
   * subdomains) until its expiry.
   */
  replaceRules(rules: readonly EngineRule[], bans: readonly EngineBan[] = []): void {
    const entries = new Map<string, DomainEntry>();
    for (const rule of rules) {
      const entry = entries.get(rule.domain) ?? {};
      entry[rule.kind] = rule;
      entries.set(rule.domain, entry);
    }
    for (const ban of bans) {
      const entry = entries.get(ban.domain) ?? {};
      // Bans do not stack, but two processes may race; the one that ends later is kept.
      if (entry.ban === undefined || endsLater(ban.expiresAt, entry.ban.expiresAt)) {
        entry.ban = {
          id: ban.id,
          domain: ban.domain,
          kind: "deny",
          severity: "suspend",
          includeSubdomains: false,
          reason: ban.reason,
          expiresAt: ban.expiresAt,
        };
      }
      entries.set(ban.domain, entry);
    }
    this.#entries = entries;
    this.#size = rules.length + bans.length;
  }

  decide(host: string, now: Date = new Date()): PolicyDecision {
    let canonical: string;
    try {
      canonical = parseHost(host).host;
    } catch (error) {
      if (!(error instanceof InvalidHostError)) throw error;
      // Fails closed: a host that cannot be named cannot be checked against the rules.
      return {
        action: "suspend",
        reason: `invalid host: ${error.reason}`,
        source: { kind: "rule", id: null },
        expiresAt: null,
      };
    }
    return this.decideCanonical(canonical, now);
  }

  /** Decides for a host already in canonical form (see `src/policy/domain.ts`). */
  decideCanonical(host: string, now: Date = new Date()): PolicyDecision {
    const nowMs = now.getTime();
    let deny: EngineRule | undefined;
    let denyIsBan = false;
    let allowed = false;

    // The exact domain first, then each parent, so the first deny found at a severity is the
    // most specific one. IP addresses have no parents.
    let domain = host;
    let exact = true;
    const parents = !isIpAddress(host);
    for (;;) {
      const entry = this.#entries.get(domain);
      if (entry !== undefined) {
        const denyRule = entry.deny;
        if (isActive(denyRule, nowMs) && (exact || denyRule.includeSubdomains)) {
          if (deny === undefined || isStricter(denyRule, deny)) {
            deny = denyRule;
            denyIsBan = false;
          }
        }
        const ban = entry.ban;
        if (exact && isActive(ban, nowMs) && (deny === undefined || isStricter(ban, deny))) {
          deny = ban;
          denyIsBan = true;
        }
        const allowRule = entry.allow;
        if (isActive(allowRule, nowMs) && (exact || allowRule.includeSubdomains)) allowed = true;
      }
      if (!parents) break;
      const dot = domain.indexOf(".");
      if (dot === -1) break;
      domain = domain.slice(dot + 1);
      exact = false;
    }

    if (deny !== undefined) {
      return {
        action: deny.severity ?? "suspend",
        reason: deny.reason ?? "denied by a domain rule",
        source: { kind: denyIsBan ? "ban" : "rule", id: deny.id },
        expiresAt: deny.expiresAt,
      };
    }
    if (this.mode === "allowlist" && !allowed) {
      return {
        action: "suspend",
        reason: "the domain is not on this node's allowlist",
        source: { kind: "allowlist", id: null },
        expiresAt: null,
      };
    }
    return ALLOW;
  }
}

/** True when an expiry (null for never) lies after another. */
function endsLater(candidate: Date | null, current: Date | null): boolean {
  if (current === null) return false;
  return candidate === null || candidate.getTime() > current.getTime();
}

function isStricter(candidate: EngineRule, current: EngineRule): boolean {
  const candidateRank = SEVERITY_RANK[candidate.severity ?? "suspend"];
  const currentRank = SEVERITY_RANK[current.severity ?? "suspend"];
  return candidateRank < currentRank;
}

/** Reads every rule, the open domain bans and the version they belong to, in one snapshot. */
async function loadRuleSet(
  db: DatabaseLike,
): Promise<{ version: number; rules: EngineRule[]; bans: EngineBan[] }> {
  return await db.transaction(
    async (tx) => {
      const version = await readRulesVersion(tx);
      const rules = await tx
        .select({
          id: domainRules.id,
          domain: domainRules.domain,
          kind: domainRules.kind,
          severity: domainRules.severity,
          includeSubdomains: domainRules.includeSubdomains,
          reason: domainRules.reason,
          expiresAt: domainRules.expiresAt,
        })
        .from(domainRules);
      const bans = await loadOpenDomainBans(tx);
      return { version, rules, bans };
    },
    { isolationLevel: "repeatable read", accessMode: "read only" },
  );
}

export interface DatabasePolicyEngineOptions {
  mode: FederationMode;
  /** Milliseconds between two checks of the rules version by {@link DatabasePolicyEngine.start}. */
  checkIntervalMs?: number;
}

/**
 * A {@link DomainPolicyEngine} kept in step with `domain_rules`. Call {@link reload} once before
 * the first decision, then {@link start} to poll the version; decisions never wait for the
 * database.
 */
export class DatabasePolicyEngine implements PolicyEngine {
  readonly #db: DatabaseLike;
  readonly #engine: DomainPolicyEngine;
  readonly #checkIntervalMs: number;
  #version = -1;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;

  constructor(db: DatabaseLike, options: DatabasePolicyEngineOptions) {
    this.#db = db;
    this.#engine = new DomainPolicyEngine(options.mode);
    this.#checkIntervalMs = options.checkIntervalMs ?? 5000;
  }

  /** Rules version of the rules in memory; -1 before the first load. */
  get version(): number {
    return this.#version;
  }

  get size(): number {
    return this.#engine.size;
  }

  decide(host: string, now?: Date): PolicyDecision {
    return this.#engine.decide(host, now);
  }

  /** Loads every rule and open domain ban from the database, whatever the version. */
  async reload(): Promise<void> {
    const { version, rules, bans } = await loadRuleSet(this.#db);
    this.#engine.replaceRules(rules, bans);
    this.#version = version;
    logger.debug("Loaded {count} domain rules and {bans} domain bans at version {version}", {
      count: rules.length,
      bans: bans.length,
      version,
    });
  }

  /** Reloads when the rules version in the database differs; returns whether it reloaded. */
  async refresh(): Promise<boolean> {
    const version = await readRulesVersion(this.#db);
    if (version === this.#version) return false;
    await this.reload();
    return true;
  }

  /** Starts checking the rules version every `checkIntervalMs`; failures are logged and retried. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (this.#checking !== undefined) return;
      this.#checking = this.refresh()
        .then(
          () => undefined,
          (error: unknown) => {
            logger.error("Failed to refresh domain rules; keeping version {version}: {error}", {
              version: this.#version,
              error,
            });
          },
        )
        .finally(() => {
          this.#checking = undefined;
        });
    }, this.#checkIntervalMs);
    this.#timer.unref();
  }

  /** Stops the periodic check and waits for a check in progress. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#checking;
  }
}
