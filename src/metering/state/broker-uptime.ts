/**
 * Broker uptime from Mosquitto's `$SYS/broker/uptime` topic. Mosquitto publishes it as a retained
 * message such as `"5214 seconds"` every `sys_interval` (10 s by default), so a subscriber gets
 * the current value at once. EMQX does not publish this topic to normal clients; its uptime comes
 * from the EMQX management API.
 */
import type { MqttClient } from "mqtt";

export const MOSQUITTO_UPTIME_TOPIC = "$SYS/broker/uptime";

/** Parses `"<n> seconds"`; returns `undefined` for anything else. */
export function parseMosquittoUptime(payload: string): number | undefined {
  const match = /^\s*(\d+)\s+seconds?\s*$/.exec(payload);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export interface BrokerUptimeWatch {
  /**
   * Returns the broker's uptime in seconds: the last reported value plus the time since it
   * arrived, or `undefined` before the first report.
   */
  uptime(): number | undefined;
  /** Unsubscribes; the client stays connected. */
  stop(): Promise<void>;
}

/** Subscribes `client` to {@link MOSQUITTO_UPTIME_TOPIC} and keeps the latest value. */
export async function watchMosquittoUptime(
  client: MqttClient,
  now: () => number = () => performance.now(),
): Promise<BrokerUptimeWatch> {
  let last: { seconds: number; receivedAt: number } | undefined;
  const onMessage = (topic: string, payload: Buffer) => {
    if (topic !== MOSQUITTO_UPTIME_TOPIC) return;
    const seconds = parseMosquittoUptime(payload.toString("utf8"));
    if (seconds !== undefined) last = { seconds, receivedAt: now() };
  };
  client.on("message", onMessage);
  await client.subscribeAsync(MOSQUITTO_UPTIME_TOPIC, { qos: 0 });
  return {
    uptime: () =>
      last === undefined ? undefined : last.seconds + (now() - last.receivedAt) / 1000,
    stop: async () => {
      client.off("message", onMessage);
      await client.unsubscribeAsync(MOSQUITTO_UPTIME_TOPIC);
    },
  };
}
