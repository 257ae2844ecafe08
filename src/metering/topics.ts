/**
 * Classification of MQTT topics into Pepeunit's topic forms. Pepeunit (backend 1.2) builds every
 * topic from the instance domain and lower-case UUIDs, with at most five levels:
 *
 * - `<domain>/<unit node uuid>`: a UnitNode topic;
 * - `<domain>/<unit node uuid>/pepeunit`: a UnitNode topic that the backend and DataPipe read;
 * - `<domain>/<input_base_topic|output_base_topic>/<unit uuid>/<purpose>/pepeunit`: a Unit's
 *   system topic (commands, state, log).
 *
 * Every other topic still counts as load; it is classified as `other` with the {@link TopicProblem}
 * that explains why it is not one of these forms. Payloads are never decoded here.
 */
import type { DomainKind } from "../timeseries/types.ts";

/** Pepeunit's `PU_MQTT_MAX_TOPIC_LEVELS`. */
export const PEPEUNIT_MAX_TOPIC_LEVELS = 5;

/** Pepeunit's `PU_MQTT_MAX_PAYLOAD_SIZE` (256 KB, enforced by EMQX as 262,144 bytes). */
export const PEPEUNIT_MAX_PAYLOAD_BYTES = 256 * 1024;

/** The suffix level that marks topics read by the Pepeunit backend and DataPipe. */
export const BACKEND_SUFFIX = "pepeunit";

export const BASE_TOPIC_DESTINATIONS = ["input_base_topic", "output_base_topic"] as const;
export type BaseTopicDestination = (typeof BASE_TOPIC_DESTINATIONS)[number];

/**
 * - `unit-node`: `<domain>/<unit node uuid>`;
 * - `unit-node-backend`: `<domain>/<unit node uuid>/pepeunit`;
 * - `base`: `<domain>/<destination>/<unit uuid>/<purpose>/pepeunit`;
 * - `other`: any other topic, which is load without attribution;
 * - `broker`: a topic that starts with `$` (`$SYS/...`): broker internals, not load.
 */
export type TopicKind = "unit-node" | "unit-node-backend" | "base" | "other" | "broker";

/**
 * Why a topic is not one of Pepeunit's forms, or why its id is unusual:
 * - `invalid-utf8`: the topic contains U+FFFD, which is what mqtt.js decodes invalid UTF-8 to;
 * - `empty-level`: `a//b`, a leading or a trailing `/`;
 * - `too-deep`: more than {@link PEPEUNIT_MAX_TOPIC_LEVELS} levels;
 * - `invalid-domain`: the first level is not a lower-case domain name;
 * - `invalid-id`: the level where a UUID belongs contains something else;
 * - `non-canonical-id`: the UUID is valid but not lower-case; it is still attributed;
 * - `unknown-form`: well-formed levels that match none of the forms.
 */
export type TopicProblem =
  | "invalid-utf8"
  | "empty-level"
  | "too-deep"
  | "invalid-domain"
  | "invalid-id"
  | "non-canonical-id"
  | "unknown-form";

export interface TopicClassification {
  kind: TopicKind;
  /** First level when it is a valid domain name, otherwise the empty string. */
  domain: string;
  /** `local` only when {@link domain} equals this instance's domain. */
  domainKind: DomainKind;
  /** Lower-cased UnitNode UUID of the `unit-node` and `unit-node-backend` forms. */
  unitNodeId?: string;
  /** Lower-cased Unit UUID of the `base` form. */
  unitId?: string;
  destination?: BaseTopicDestination;
  /** Fourth level of the `base` form, such as `state` or `log`. */
  purpose?: string;
  problem?: TopicProblem;
}

const UUID_PATTERN =
  /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

// The same rule as PU_NODE_PEPEUNIT_DOMAIN in src/config.ts: lower-case labels, optional port.
const DOMAIN_PATTERN =
  /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/;
const MAX_DOMAIN_LENGTH = 253;

/** Returns true when `value` can be the domain level of a Pepeunit topic. */
export function isTopicDomain(value: string): boolean {
  return value.length <= MAX_DOMAIN_LENGTH && DOMAIN_PATTERN.test(value);
}

/**
 * Returns the domain under which a topic is counted: its first level when that is a valid domain
 * name, otherwise the empty string. Cheaper than {@link classifyTopic}.
 */
export function topicDomain(topic: string): string {
  const slash = topic.indexOf("/");
  const first = slash === -1 ? topic : topic.slice(0, slash);
  return isTopicDomain(first) ? first : "";
}

/** Parses a UUID level; returns the lower-case id and whether it was already lower case. */
function parseUuid(level: string): { id: string; canonical: boolean } | undefined {
  if (!UUID_PATTERN.test(level)) return undefined;
  const id = level.toLowerCase();
  return { id, canonical: id === level };
}

/**
 * Classifies `topic` for an instance whose domain is `localDomain`. Never throws: every string
 * gets a classification, and only `broker` topics are excluded from load.
 */
export function classifyTopic(topic: string, localDomain: string): TopicClassification {
  if (topic.startsWith("$")) return { kind: "broker", domain: "", domainKind: "foreign" };

  const levels = topic.split("/");
  const domain = isTopicDomain(levels[0] ?? "") ? (levels[0] as string) : "";
  const domainKind: DomainKind = domain !== "" && domain === localDomain ? "local" : "foreign";
  const other = (problem: TopicProblem): TopicClassification => ({
    kind: "other",
    domain,
    domainKind,
    problem,
  });

  // A broken encoding or an empty level is a client bug whatever the rest of the topic looks like,
  // so these problems are reported before the others.
  if (topic.includes("\uFFFD")) return other("invalid-utf8");
  if (levels.some((level) => level === "")) return other("empty-level");
  if (levels.length > PEPEUNIT_MAX_TOPIC_LEVELS) return other("too-deep");
  if (domain === "") return other("invalid-domain");

  const [, second = "", third, fourth, fifth] = levels;
  if (levels.length === 2 || (levels.length === 3 && third === BACKEND_SUFFIX)) {
    const node = parseUuid(second);
    if (!node) return other("invalid-id");
    return {
      kind: levels.length === 2 ? "unit-node" : "unit-node-backend",
      domain,
      domainKind,
      unitNodeId: node.id,
      ...(node.canonical ? {} : { problem: "non-canonical-id" as const }),
    };
  }

  const destination = BASE_TOPIC_DESTINATIONS.find((value) => value === second);
  if (levels.length === 5 && destination && fifth === BACKEND_SUFFIX) {
    const unit = parseUuid(third ?? "");
    if (!unit) return other("invalid-id");
    return {
      kind: "base",
      domain,
      domainKind,
      unitId: unit.id,
      destination,
      purpose: fourth as string,
      ...(unit.canonical ? {} : { problem: "non-canonical-id" as const }),
    };
  }

  return other("unknown-form");
}
