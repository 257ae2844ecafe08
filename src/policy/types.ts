/**
 * Shared types of federation policy: what the node decides about a remote host before any
 * federation work (inbound deliveries, fetches, outbound deliveries, bridges).
 */

/** How far a rule cuts a domain off. */
export type RuleSeverity =
  /** No traffic at all: deliveries refused, nothing fetched from or delivered to it. */
  | "suspend"
  /** Follows and deliveries pass, but its Repos and Units are not stored or shown. */
  | "reject_content";

/** What the policy gate does with traffic from or to one host. */
export type PolicyDecision =
  | { action: "allow" }
  | {
      action: "suspend" | "reject_content";
      /** Why, for logs, the administrator and (for suspend) the 403 body. */
      reason: string;
      /** Id of the rule or ban that decided, for the audit trail. */
      source: { kind: "rule" | "ban" | "allowlist"; id: string | null };
      /** When the decision stops applying; null for permanent ones. */
      expiresAt: Date | null;
    };

/** Decides about one host (`host` or `host:port`, any case, possibly Unicode or punycode). */
export interface PolicyEngine {
  decide(host: string, now?: Date): PolicyDecision;
}
