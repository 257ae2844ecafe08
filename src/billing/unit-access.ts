/**
 * Revoking and restoring the MQTT access of stopped Units.
 *
 * Pepeunit Units connect to EMQX with their JWT as the username and a client id of their own
 * choice, and the node stores neither. The node stores the Unit's topics instead:
 * `<domain>/<input|output>_base_topic/<unit id>/<purpose>/pepeunit` and `<domain>/<unit node id>`
 * with the optional `/pepeunit` suffix. So the EMQX implementation adds built-in database
 * authorization rules for all clients (`rules/all`) that deny publish and subscribe on those
 * topics. The Unit can then neither publish nor subscribe, and nobody can publish to its inputs.
 * docs/billing.md lists the limits.
 */
import { z } from "zod";
import { AUTHZ_SOURCE_TYPE, type AuthzRule } from "../bridges/emqx/api.ts";
import type { Config } from "../config.ts";
import { EmqxTransport, parseEmqxJson } from "../metering/emqx/transport.ts";

/** A Unit and the ids of its UnitNodes, which name its topics. */
export interface UnitTopics {
  unitId: string;
  unitNodeIds: readonly string[];
}

/** Revokes and restores the broker access of Units. Both calls are idempotent. */
export interface UnitAccessControl {
  readonly kind: "off" | "emqx";
  revoke(unit: UnitTopics): Promise<void>;
  restore(unit: UnitTopics): Promise<void>;
}

/** Used when no broker is configured: the node records the state and touches no broker. */
export class OffUnitAccess implements UnitAccessControl {
  readonly kind = "off" as const;

  async revoke(): Promise<void> {}

  async restore(): Promise<void> {}
}

/** Returns the deny rules that cut a Unit off: one for its base topics and one per UnitNode. */
export function unitDenyRules(domain: string, unit: UnitTopics): AuthzRule[] {
  // `#` also matches its parent level, so `<domain>/<node>/#` covers both `<domain>/<node>` and
  // `<domain>/<node>/pepeunit`.
  return [
    { topic: `${domain}/+/${unit.unitId}/+/pepeunit`, permission: "deny", action: "all" },
    ...unit.unitNodeIds.map((nodeId) => ({
      topic: `${domain}/${nodeId}/#`,
      permission: "deny" as const,
      action: "all" as const,
    })),
  ];
}

const allRulesSchema = z.looseObject({
  rules: z.array(z.looseObject({ topic: z.string(), permission: z.string(), action: z.string() })),
});

const RULES_PATH = `authorization/sources/${AUTHZ_SOURCE_TYPE}/rules/all`;

/**
 * Keeps the deny rules of stopped Units in the EMQX 5.8 built-in database rules for all clients
 * (`GET` and `POST /api/v5/authorization/sources/built_in_database/rules/all`, where `POST`
 * replaces the whole list). Rules that other tools put in that list are kept as they are.
 *
 * NOTE: two writers of the list at once can lose each other's change, because EMQX has no
 * conditional update. The billing job is the only writer in the node, under its advisory lock.
 */
export class EmqxUnitAccess implements UnitAccessControl {
  readonly kind = "emqx" as const;
  readonly #transport: EmqxTransport;
  readonly #domain: string;

  constructor(transport: EmqxTransport, domain: string) {
    this.#transport = transport;
    this.#domain = domain;
  }

  async revoke(unit: UnitTopics): Promise<void> {
    const rules = await this.#readRules();
    const present = new Set(rules.map(ruleId));
    const missing = unitDenyRules(this.#domain, unit).filter((rule) => !present.has(ruleId(rule)));
    if (missing.length === 0) return;
    await this.#writeRules([...missing, ...rules]);
  }

  async restore(unit: UnitTopics): Promise<void> {
    const rules = await this.#readRules();
    const remove = new Set(unitDenyRules(this.#domain, unit).map(ruleId));
    const kept = rules.filter((rule) => !remove.has(ruleId(rule)));
    if (kept.length === rules.length) return;
    await this.#writeRules(kept);
  }

  async #readRules(): Promise<z.infer<typeof allRulesSchema>["rules"]> {
    const response = await this.#transport.request("GET", RULES_PATH);
    return parseEmqxJson(response, allRulesSchema).rules;
  }

  async #writeRules(rules: readonly unknown[]): Promise<void> {
    await this.#transport.request("POST", RULES_PATH, { body: { rules } });
  }
}

function ruleId(rule: { topic: string; permission: string; action: string }): string {
  return `${rule.permission} ${rule.action} ${rule.topic}`;
}

/** Returns the access control that `PU_NODE_UNIT_ACCESS_DRIVER` selects. */
export function createUnitAccess(config: Config): UnitAccessControl {
  if (config.billing.unitAccessDriver === "off" || config.emqxApiUrl === undefined) {
    return new OffUnitAccess();
  }
  const transport = new EmqxTransport({
    url: config.emqxApiUrl,
    apiKey: config.emqxApiKey,
    apiSecret: config.emqxApiSecret,
  });
  return new EmqxUnitAccess(transport, config.pepeunitDomain);
}
