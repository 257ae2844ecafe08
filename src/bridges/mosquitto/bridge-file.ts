/**
 * The bridge include file: one Mosquitto `connection` section per agreed bridge, rendered from
 * {@link BridgeSpec}s and parsed back by bridge id. Option names and meanings follow
 * mosquitto.conf(5) of Mosquitto 2.0.11.
 */
import { InvalidHostError, parseHost } from "../../policy/domain.ts";
import {
  type BridgeSpec,
  bridgeResourceName,
  InvalidBridgeError,
  OWNED_RESOURCE_PREFIX,
} from "../driver.ts";

/** Settings that apply to every rendered section, from the driver's options. */
export interface BridgeFileSettings {
  /** PEM file of the CAs that sign remote broker certificates; required for `mqtts://` remotes. */
  caFile?: string;
}

export const BRIDGE_FILE_HEADER = [
  "# Bridges of Pepeunit Node. The node rewrites this file and restarts Mosquitto when a bridge",
  "# changes, so edits made here are lost. Mosquitto loads it through include_dir.",
];

// Mosquitto reads an option value up to the end of its line and strips surrounding spaces, so a
// line break in a value would start a new option and a space could change its meaning.
const UNSAFE_CHARACTER = /[\s\p{Cc}\p{Cf}]/u;

/**
 * Throws {@link InvalidBridgeError} unless `value` can be written to mosquitto.conf as one token:
 * not empty, and without whitespace, control or format characters. `description` names the value
 * in the error, e.g. "remote password of bridge <id>".
 */
export function checkConfigValue(value: string, description: string): void {
  if (value.length === 0) {
    throw new InvalidBridgeError(`Invalid ${description}: the value is empty`);
  }
  if (UNSAFE_CHARACTER.test(value)) {
    throw new InvalidBridgeError(
      `Invalid ${description} ${JSON.stringify(value)}: whitespace and control characters cannot be written to mosquitto.conf; use printable characters without spaces`,
    );
  }
}

/** A remote broker address in the form of the `address` option, and whether it uses TLS. */
export interface BridgeAddress {
  address: string;
  tls: boolean;
}

const BROKER_URL = /^(mqtts?):\/\/([^/?#]*)\/?$/;

/**
 * Parses `mqtt://host[:port]` or `mqtts://host[:port]` into Mosquitto's `address` form
 * `host:port`. The port defaults to 1883 for `mqtt` and 8883 for `mqtts`. Mosquitto needs the
 * port for IPv6 addresses and takes them without brackets (`::1:1883`).
 */
export function parseBrokerUrl(url: string): BridgeAddress {
  const match = BROKER_URL.exec(url);
  if (!match) {
    throw new InvalidBridgeError(
      `Invalid remote broker URL ${JSON.stringify(url)}: expected mqtt://host:port or mqtts://host:port, without credentials, path or query`,
    );
  }
  const [, scheme, authority = ""] = match;
  const tls = scheme === "mqtts";
  let host: string;
  let port: number | null;
  try {
    ({ host, port } = parseHost(authority));
  } catch (error) {
    if (!(error instanceof InvalidHostError)) throw error;
    throw new InvalidBridgeError(
      `Invalid remote broker URL ${JSON.stringify(url)}: ${error.reason}`,
    );
  }
  const bareHost = host.startsWith("[") ? host.slice(1, -1) : host;
  return { address: `${bareHost}:${port ?? (tls ? 8883 : 1883)}`, tls };
}

/**
 * Renders the `connection` section of one bridge. The caller has checked the bridge's routes
 * against the export rule; this checks every value that goes into the file.
 */
export function renderBridgeSection(spec: BridgeSpec, settings: BridgeFileSettings): string {
  const { address, tls } = parseBrokerUrl(spec.remote.url);
  const { username, password, clientId } = spec.remote;
  checkConfigValue(clientId, `remote client id of bridge ${spec.id}`);
  if (password !== undefined && username === undefined) {
    throw new InvalidBridgeError(
      `Bridge ${spec.id} has a remote password but no username; Mosquitto sends remote_password only with remote_username`,
    );
  }

  const lines = [
    `connection ${bridgeResourceName(spec.id)}`,
    `address ${address}`,
    `remote_clientid ${clientId}`,
  ];
  if (username !== undefined) {
    checkConfigValue(username, `remote username of bridge ${spec.id}`);
    lines.push(`remote_username ${username}`);
  }
  if (password !== undefined) {
    checkConfigValue(password, `remote password of bridge ${spec.id}`);
    lines.push(`remote_password ${password}`);
  }
  if (tls) {
    if (settings.caFile === undefined) {
      throw new InvalidBridgeError(
        `Bridge ${spec.id} connects to ${spec.remote.url}, but no CA file is configured for mqtts:// remotes; set the Mosquitto driver's caFile option or use mqtt://`,
      );
    }
    checkConfigValue(settings.caFile, "CA file path of the Mosquitto driver");
    lines.push(`bridge_cafile ${settings.caFile}`);
  }

  lines.push(
    "bridge_protocol_version mqttv311",
    // A clean session makes the remote broker forget the subscriptions of an earlier start, so
    // a route removed here (a banned topic) stops at the next restart. With a kept session,
    // Mosquitto 2.0.11 keeps receiving removed routes and republishes them. The cost: QoS 1
    // messages published while the bridge reconnects are not queued for it.
    "cleansession true",
    // The remote may be EMQX or another broker without Mosquitto's bridge flag. The flag only
    // improves loop detection, and the export rule already rules out loops.
    "try_private false",
    // State notifications go to $SYS/broker/connection/<remote client id>/state on this broker
    // only: on the remote they would be a last-will publish, which a read-only grant rejects.
    "notifications_local_only true",
    // Reconnect backoff with jitter between 5 and 60 seconds.
    "restart_timeout 5 60",
  );

  const routes = [...spec.routes].sort((left, right) => compareText(left.topic, right.topic));
  for (const route of routes) {
    checkConfigValue(route.topic, `route topic of bridge ${spec.id}`);
    lines.push(`topic ${route.topic} ${spec.direction} ${route.qos}`);
  }
  return lines.join("\n");
}

/** Orders strings by UTF-16 code units, like `Array.prototype.sort` without a comparator. */
export function compareText(left: string, right: string): number {
  if (left < right) return -1;
  if (left > right) return 1;
  return 0;
}

/** Renders the whole include file, with sections in bridge id order so the text is stable. */
export function renderBridgeFile(sections: ReadonlyMap<string, string>): string {
  const ids = [...sections.keys()].sort();
  const parts = [BRIDGE_FILE_HEADER.join("\n"), ...ids.map((id) => sections.get(id))];
  return `${parts.join("\n\n")}\n`;
}

const OWNED_CONNECTION = new RegExp(`^connection ${OWNED_RESOURCE_PREFIX}([0-9a-f]{32})$`);

/**
 * Parses a bridge include file into its sections by bridge id. A section runs from its
 * `connection` line to the line before the next blank line or `connection` line.
 *
 * @throws {Error} when a `connection` line does not name a bridge of this node, because then the
 *   file was edited by hand and rewriting it would drop that bridge.
 */
export function parseBridgeFile(text: string): Map<string, string> {
  const sections = new Map<string, string>();
  let current: { id: string; lines: string[] } | undefined;

  const finish = () => {
    if (current) sections.set(current.id, current.lines.join("\n"));
    current = undefined;
  };

  for (const line of text.split("\n")) {
    if (line.startsWith("connection ")) {
      finish();
      const match = OWNED_CONNECTION.exec(line);
      if (!match?.[1]) {
        throw new Error(
          `The bridge include file has a section that Pepeunit Node did not write (${JSON.stringify(line)}); move that bridge to another file of the include_dir`,
        );
      }
      current = { id: uuidFromHex(match[1]), lines: [line] };
    } else if (line.trim() === "") {
      finish();
    } else if (current) {
      current.lines.push(line);
    }
  }
  finish();
  return sections;
}

function uuidFromHex(hex: string): string {
  return [
    hex.slice(0, 8),
    hex.slice(8, 12),
    hex.slice(12, 16),
    hex.slice(16, 20),
    hex.slice(20),
  ].join("-");
}
