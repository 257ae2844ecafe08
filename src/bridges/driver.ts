/**
 * The interface between agreed MQTT bridges and the broker that runs them.
 *
 * A bridge carries UnitNode topics between two Pepeunit instances. A topic always keeps its
 * origin domain as the first level (`a.example/<unit node uuid>` on both brokers), and a node
 * only exports topics under its own domain, so a foreign topic is never sent on and bridges
 * cannot loop. {@link checkBridgeSpec} enforces that rule for every driver.
 *
 * Drivers are reconcilers: {@link BrokerBridgeDriver.apply} receives the whole desired state and
 * makes the broker run exactly that, creating, changing and removing only what this node owns.
 */
import { canonicalHost } from "../policy/domain.ts";

export type BridgeQos = 0 | 1;

/** One topic carried by a bridge, with the QoS of its subscription or publication. */
export interface BridgeRoute {
  /** A UnitNode topic without wildcards, `<origin domain>/<unit node uuid>`. */
  topic: string;
  qos: BridgeQos;
}

/**
 * One agreed bridge as the local broker runs it.
 * - `in`: the local broker subscribes to the routes on the remote broker and publishes what it
 *   receives locally under the same topics (the routes are foreign topics);
 * - `out`: the local broker publishes the routes, which are local topics, to the remote broker.
 */
export interface BridgeSpec {
  /** Bridge id (a UUID); drivers derive the names of broker resources from it. */
  id: string;
  direction: "in" | "out";
  remote: {
    /** `mqtt://host:port` or `mqtts://host:port`. */
    url: string;
    username?: string;
    password?: string;
    /** MQTT client id the local broker uses on the remote broker. */
    clientId: string;
  };
  routes: BridgeRoute[];
}

/**
 * Credentials with which a remote broker may read local topics for one bridge. The driver makes
 * the local broker accept `username`/`password` and allow that client to subscribe to `topics`
 * and nothing else (no publishing).
 */
export interface ExportGrant {
  /** Bridge id the grant belongs to. */
  id: string;
  username: string;
  password: string;
  /** Local UnitNode topics, `<local domain>/<unit node uuid>`. */
  topics: string[];
}

export interface DesiredBrokerState {
  bridges: BridgeSpec[];
  grants: ExportGrant[];
}

/** The changes of one {@link BrokerBridgeDriver.apply}, by bridge or grant id. */
export interface ApplyReport {
  created: string[];
  updated: string[];
  removed: string[];
  /** True when the broker had to restart (Mosquitto loads bridge sections only at start). */
  restarted: boolean;
}

export interface BrokerBridgeDriver {
  readonly kind: "emqx" | "mosquitto";
  /**
   * Makes the broker run exactly `desired`. Idempotent: applying the same state twice changes
   * nothing the second time. Resources the node did not create are never touched.
   */
  apply(desired: DesiredBrokerState): Promise<ApplyReport>;
  /** Ids of the bridges and grants the broker runs now, as read back from the broker. */
  inspect(): Promise<{ bridges: string[]; grants: string[] }>;
}

/** Raised for a bridge that would carry a topic against the export rule, or is malformed. */
export class InvalidBridgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidBridgeError";
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Splits a UnitNode topic into its canonical origin domain and UnitNode id, or throws. */
export function parseBridgeTopic(topic: string): { domain: string; unitNodeId: string } {
  const levels = topic.split("/");
  const [domain, unitNodeId] = levels;
  if (levels.length !== 2 || !domain || !unitNodeId || !UUID.test(unitNodeId)) {
    throw new InvalidBridgeError(
      `Invalid bridge topic ${JSON.stringify(topic)}: expected <domain>/<lower-case unit node uuid>, with no wildcards`,
    );
  }
  if (canonicalHost(domain) !== domain) {
    throw new InvalidBridgeError(
      `Invalid bridge topic ${JSON.stringify(topic)}: the first level must be a canonical domain (lower case, punycode, no port)`,
    );
  }
  return { domain, unitNodeId };
}

/**
 * Checks a bridge against the export rule: `in` bridges carry only topics of the remote domain
 * `remoteDomain`, `out` bridges only topics of `localDomain`.
 */
export function checkBridgeSpec(spec: BridgeSpec, localDomain: string, remoteDomain: string): void {
  if (!UUID.test(spec.id)) {
    throw new InvalidBridgeError(`Invalid bridge id ${JSON.stringify(spec.id)}: expected a UUID`);
  }
  if (remoteDomain === localDomain) {
    throw new InvalidBridgeError(
      `Bridge ${spec.id} connects ${localDomain} with itself: only topics of ${localDomain} may go out of this broker and no topic of it may come in`,
    );
  }
  if (spec.routes.length === 0) {
    throw new InvalidBridgeError(`Bridge ${spec.id} has no routes; remove the bridge instead`);
  }
  const expectedDomain = spec.direction === "in" ? remoteDomain : localDomain;
  for (const route of spec.routes) {
    const { domain } = parseBridgeTopic(route.topic);
    if (domain !== expectedDomain) {
      throw new InvalidBridgeError(
        `Bridge ${spec.id} (${spec.direction}) cannot carry ${route.topic}: only topics of ${expectedDomain} may go ${spec.direction === "in" ? "into this broker" : "out of this broker"}, so foreign topics are never sent on`,
      );
    }
    if (route.qos !== 0 && route.qos !== 1) {
      throw new InvalidBridgeError(
        `Bridge ${spec.id} route ${route.topic} has QoS ${String(route.qos)}; use 0 or 1`,
      );
    }
  }
}

/** Prefix of every broker resource (connector, source, rule, bridge section, user) the node owns. */
export const OWNED_RESOURCE_PREFIX = "pepeunit-node-";

/** Name of the broker resource for one bridge: the prefix and the bridge id without dashes. */
export function bridgeResourceName(bridgeId: string): string {
  return `${OWNED_RESOURCE_PREFIX}${bridgeId.replaceAll("-", "")}`;
}
