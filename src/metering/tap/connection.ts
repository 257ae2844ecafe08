/**
 * Connection settings of the tap: broker URL, credentials, protocol version, session and the topic
 * filters it subscribes to.
 */
import type { IClientOptions } from "mqtt";
import type { Config } from "../../config.ts";
import { createBackendToken } from "./backend-token.ts";

/**
 * Topic filters of the tap. They cover every Pepeunit form (local and foreign UnitNode topics and
 * local system topics) and are disjoint, because each matches a different number of levels (2, 3
 * and 5). A message therefore matches exactly one subscription and is delivered once. Overlapping
 * filters such as `<domain>/+` beside `+/+` would make MQTT 3.1.1 brokers deliver a message once
 * per matching filter and, inside a shared-subscription group, to two different taps.
 *
 * Wildcard filters never match topics that start with `$` (MQTT 3.1.1 section 4.7.2), so `$SYS`
 * traffic does not reach the tap.
 *
 * NOTE: Pepeunit's authorisation hook also lets a device publish `<domain>/<unit node uuid>/<any>`,
 * which these filters miss. `+/+/+` would catch it, but whether the hook grants `+/+/+` to the
 * Backend token is not verified, and a rejected filter would fail the whole subscription.
 */
export function tapTopicFilters(localDomain: string): string[] {
  return ["+/+", "+/+/pepeunit", `${localDomain}/+/+/+/pepeunit`];
}

/** Returns `filter` as a member of the shared-subscription group `group`. */
export function sharedFilter(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

export interface TapConnectionPlan {
  url: URL;
  /** True for the embedded aedes broker, which speaks MQTT 3.1.1 only and has no `$share`. */
  embedded: boolean;
  options: IClientOptions;
}

/** Seconds the broker keeps the tap's session and queues its QoS 1 messages while it is away. */
export const DEFAULT_SESSION_EXPIRY_SECONDS = 300;

/**
 * Builds the connection of tap `tapId`.
 *
 * The MQTT username is `PU_NODE_MQTT_USERNAME` when set. Otherwise, when
 * `PU_NODE_PEPEUNIT_SECRET_KEY` is set, it is the Pepeunit Backend token, which Pepeunit's EMQX
 * authorisation lets subscribe to every topic form the tap needs.
 *
 * On an external broker the session is persistent (clean start off, a fixed client id per tap id)
 * so that the broker queues QoS 1 messages during a reconnect. The cost is broker memory for the queue while the tap
 * is away, up to `sessionExpirySeconds` (EMQX as Pepeunit configures it caps the queue at 128
 * messages per session and never queues QoS 0). The default tap id contains the process id, so
 * the session outlives reconnects but not a restart unless `PU_NODE_TAP_ID` is set.
 */
export async function planTapConnection(
  config: Config,
  tapId: string,
  sessionExpirySeconds = DEFAULT_SESSION_EXPIRY_SECONDS,
): Promise<TapConnectionPlan> {
  const embedded = config.mqttUrl === undefined;
  const url = config.mqttUrl ?? new URL(`mqtt://127.0.0.1:${config.embeddedMqttPort}`);

  let username = config.mqttUsername;
  if (username === undefined && config.pepeunitSecretKey !== undefined) {
    username = await createBackendToken(config.pepeunitDomain, config.pepeunitSecretKey);
  }

  const options: IClientOptions = {
    clientId: `pepeunit-node-tap-${tapId}`,
    // The embedded broker lives in the tap's own process and keeps sessions in memory, so a
    // persistent session there would never outlive a disconnect that matters. aedes 1.2 also
    // drops persistent-session clients when a PUBACK overtakes its own bookkeeping ("no such
    // packet"), which a clean session avoids.
    clean: embedded,
    // Subscriptions are sent again on every connect by the tap itself.
    resubscribe: false,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    keepalive: 30,
    ...(username === undefined ? {} : { username }),
    ...(config.mqttPassword === undefined ? {} : { password: config.mqttPassword }),
  };
  if (embedded) {
    options.protocolVersion = 4;
  } else {
    options.protocolVersion = 5;
    options.properties = { sessionExpiryInterval: sessionExpirySeconds };
  }
  return { url, embedded, options };
}

/** Returns the broker URL without credentials, for logs. */
export function describeBrokerUrl(url: URL): string {
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  return copy.href;
}
