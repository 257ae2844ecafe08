/**
 * The EMQX 5.8 resources that run a desired set of bridges, as pure data: MQTT connectors, MQTT
 * sources, MQTT actions and rules, with the request bodies the REST API v5 takes. Field names
 * follow `emqx_bridge_mqtt_connector_schema.erl`, `emqx_bridge_mqtt_pubsub_schema.erl` and
 * `emqx_rule_engine_schema.erl` of EMQX v5.8.8.
 *
 * Layout per bridge, with `<base>` = {@link bridgeResourceName}:
 * - every bridge: connector `mqtt:<base>` to the remote broker;
 * - `in`: source `mqtt:<base>-<unit node uuid without dashes>` per route, and one landing rule
 *   {@link LANDING_RULE_ID} for all sources of all `in` bridges, which republishes each message
 *   locally with its original topic, QoS, retain flag and payload;
 * - `out`: per QoS in use, action `mqtt:<base>-qos<n>` and rule `<base>-qos<n>` that selects the
 *   bridge's local topics of that QoS and sends them to the action, which publishes under the
 *   same topic.
 */
import { createHmac } from "node:crypto";
import {
  type BridgeQos,
  type BridgeSpec,
  bridgeResourceName,
  InvalidBridgeError,
  OWNED_RESOURCE_PREFIX,
  parseBridgeTopic,
} from "../driver.ts";

/** The only connector, source and action type the driver uses. */
export const MQTT_TYPE = "mqtt";

/** The shared rule that republishes what every `in` source receives. */
export const LANDING_RULE_ID = `${OWNED_RESOURCE_PREFIX}landing`;

/** One connector, source, action or rule: its name or id and the body fields the node sets. */
export interface DesiredResource {
  name: string;
  /** The bridge the resource belongs to, or undefined for the shared landing rule. */
  bridgeId: string | undefined;
  config: Record<string, unknown>;
}

export interface DesiredResources {
  connectors: Map<string, DesiredResource>;
  sources: Map<string, DesiredResource>;
  actions: Map<string, DesiredResource>;
  rules: Map<string, DesiredResource>;
}

export interface ResourceOptions {
  /** Key of the HMAC that fingerprints secrets in connector descriptions. */
  fingerprintKey: string;
  /** PEM CA certificates that `mqtts://` connectors verify the remote broker against. */
  tlsCaCertificates: string | undefined;
}

/**
 * Paths of fields that EMQX never returns as sent: it masks the password as `******` and
 * stores CA certificates in a file whose path it returns. Changes to them show up in the
 * fingerprint in the connector's description instead.
 */
export const UNREADABLE_FIELDS = ["password", "ssl.cacertfile"];

/**
 * Builds the connectors, sources, actions and rules for `bridges`, which must have passed
 * `checkBridgeSpec`. Throws `InvalidBridgeError` for a remote URL that is not MQTT, an
 * `mqtts://` URL without CA certificates and a route listed twice.
 */
export function desiredResources(
  bridges: readonly BridgeSpec[],
  options: ResourceOptions,
): DesiredResources {
  const resources: DesiredResources = {
    connectors: new Map(),
    sources: new Map(),
    actions: new Map(),
    rules: new Map(),
  };
  for (const spec of bridges) {
    const base = bridgeResourceName(spec.id);
    resources.connectors.set(base, {
      name: base,
      bridgeId: spec.id,
      config: connectorConfig(spec, options),
    });
    if (spec.direction === "in") addInResources(resources, spec, base);
    else addOutResources(resources, spec, base);
  }

  const sourceNames = [...resources.sources.keys()].sort();
  if (sourceNames.length > 0) {
    const from = sourceNames.map((name) => `"$bridges/${MQTT_TYPE}:${name}"`).join(", ");
    resources.rules.set(LANDING_RULE_ID, {
      name: LANDING_RULE_ID,
      bridgeId: undefined,
      config: {
        name: LANDING_RULE_ID,
        sql: `SELECT * FROM ${from}`,
        // `$bridges/mqtt:*` events have a `retain` column, while MQTT messages carry `flags.retain`.
        actions: [
          {
            function: "republish",
            args: {
              topic: placeholder("topic"),
              qos: placeholder("qos"),
              retain: placeholder("retain"),
              payload: placeholder("payload"),
            },
          },
        ],
        enable: true,
        description: "Pepeunit Node: publishes what the MQTT sources of in bridges receive",
      },
    });
  }
  return resources;
}

function addInResources(resources: DesiredResources, spec: BridgeSpec, base: string): void {
  for (const route of spec.routes) {
    const name = `${base}-${parseBridgeTopic(route.topic).unitNodeId.replaceAll("-", "")}`;
    if (resources.sources.has(name)) {
      throw new InvalidBridgeError(`Bridge ${spec.id} lists route ${route.topic} twice`);
    }
    resources.sources.set(name, {
      name,
      bridgeId: spec.id,
      config: {
        connector: base,
        enable: true,
        description: `Pepeunit Node bridge ${spec.id}: subscribes to ${route.topic}`,
        parameters: { topic: route.topic, qos: route.qos },
      },
    });
  }
}

function addOutResources(resources: DesiredResources, spec: BridgeSpec, base: string): void {
  const topicsByQos = new Map<BridgeQos, string[]>();
  for (const route of spec.routes) {
    const topics = topicsByQos.get(route.qos) ?? [];
    if (spec.routes.filter((other) => other.topic === route.topic).length > 1) {
      throw new InvalidBridgeError(`Bridge ${spec.id} lists route ${route.topic} twice`);
    }
    topics.push(route.topic);
    topicsByQos.set(route.qos, topics);
  }
  for (const [qos, topics] of topicsByQos) {
    const name = `${base}-qos${qos}`;
    resources.actions.set(name, {
      name,
      bridgeId: spec.id,
      config: {
        connector: base,
        enable: true,
        description: `Pepeunit Node bridge ${spec.id}: publishes its QoS ${qos} topics`,
        parameters: {
          topic: placeholder("topic"),
          qos,
          retain: placeholder("flags.retain"),
          payload: placeholder("payload"),
        },
      },
    });
    const from = [...topics]
      .sort()
      .map((topic) => `"${topic}"`)
      .join(", ");
    resources.rules.set(name, {
      name,
      bridgeId: spec.id,
      config: {
        name,
        sql: `SELECT * FROM ${from}`,
        actions: [`${MQTT_TYPE}:${name}`],
        enable: true,
        description: `Pepeunit Node bridge ${spec.id}: sends its QoS ${qos} topics to the remote broker`,
      },
    });
  }
}

function connectorConfig(spec: BridgeSpec, options: ResourceOptions): Record<string, unknown> {
  const { server, host, tls } = parseRemoteUrl(spec);
  const ssl: Record<string, unknown> = { enable: tls };
  if (tls) {
    if (options.tlsCaCertificates === undefined) {
      throw new InvalidBridgeError(
        `Bridge ${spec.id} connects to ${spec.remote.url}, which needs the CA certificates of the remote broker; set the driver option tlsCaCertificates`,
      );
    }
    ssl.verify = "verify_peer";
    // Erlang checks the certificate's host name against the name sent as SNI.
    ssl.server_name_indication = host;
    ssl.cacertfile = options.tlsCaCertificates;
  }
  const fingerprint = fingerprintSecrets(options.fingerprintKey, [
    spec.remote.username ?? null,
    spec.remote.password ?? null,
    tls ? (options.tlsCaCertificates ?? null) : null,
  ]);
  const config: Record<string, unknown> = {
    enable: true,
    description: `Pepeunit Node bridge ${spec.id} (${spec.direction}); secrets ${fingerprint}`,
    server,
    proto_ver: "v4",
    // EMQX appends a hash of the connector and node name to the prefix, so the client id on the
    // remote broker is `<clientId><suffix>`, not `clientId` itself.
    clientid_prefix: spec.remote.clientId,
    clean_start: true,
    // One connection per bridge: with more, every connection of an MQTT source subscribes and
    // each message would arrive once per connection.
    pool_size: 1,
    ssl,
  };
  if (spec.remote.username !== undefined) config.username = spec.remote.username;
  if (spec.remote.password !== undefined) config.password = spec.remote.password;
  return config;
}

/** Converts `mqtt://host:port` or `mqtts://host:port` into EMQX's `server` and TLS flag. */
export function parseRemoteUrl(spec: BridgeSpec): { server: string; host: string; tls: boolean } {
  let url: URL;
  try {
    url = new URL(spec.remote.url);
  } catch {
    throw new InvalidBridgeError(
      `Bridge ${spec.id} has an invalid remote URL ${JSON.stringify(spec.remote.url)}; expected mqtt://host:port or mqtts://host:port`,
    );
  }
  if ((url.protocol !== "mqtt:" && url.protocol !== "mqtts:") || url.hostname === "") {
    throw new InvalidBridgeError(
      `Bridge ${spec.id} has an invalid remote URL ${JSON.stringify(spec.remote.url)}; expected mqtt://host:port or mqtts://host:port`,
    );
  }
  const tls = url.protocol === "mqtts:";
  const port = url.port === "" ? (tls ? "8883" : "1883") : url.port;
  return { server: `${url.hostname}:${port}`, host: url.hostname.replace(/^\[(.*)\]$/, "$1"), tls };
}

/** An EMQX template placeholder such as `${topic}`, which EMQX fills in from each message. */
function placeholder(field: string): string {
  return `\${${field}}`;
}

/** A short HMAC-SHA256 of secret values, so a description can show that they changed. */
export function fingerprintSecrets(key: string, values: readonly unknown[]): string {
  return createHmac("sha256", key).update(JSON.stringify(values)).digest("hex").slice(0, 16);
}

/**
 * Lists the fields of `desired` whose value `actual` does not have. Objects are compared by
 * the keys of `desired` only, because EMQX returns every field with its default filled in.
 * Arrays must have the same length and match element by element.
 */
export function differingFields(
  desired: unknown,
  actual: unknown,
  ignoredPaths: readonly string[] = [],
  path = "",
): string[] {
  if (ignoredPaths.includes(path)) return [];
  if (Array.isArray(desired)) {
    if (!Array.isArray(actual) || actual.length !== desired.length) return [path];
    return desired.flatMap((item, index) =>
      differingFields(item, actual[index], ignoredPaths, `${path}[${index}]`),
    );
  }
  if (typeof desired === "object" && desired !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) return [path];
    const record = actual as Record<string, unknown>;
    return Object.entries(desired).flatMap(([key, value]) =>
      differingFields(value, record[key], ignoredPaths, path === "" ? key : `${path}.${key}`),
    );
  }
  return desired === actual ? [] : [path];
}

/**
 * Reads the bridge id back from an owned resource name: the 32 hex digits after
 * {@link OWNED_RESOURCE_PREFIX}, or undefined for names of another form.
 */
export function bridgeIdFromName(name: string): string | undefined {
  const match = /^([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})(?:-|$)/.exec(
    name.slice(OWNED_RESOURCE_PREFIX.length),
  );
  if (!name.startsWith(OWNED_RESOURCE_PREFIX) || match === null) return undefined;
  return match.slice(1).join("-");
}
