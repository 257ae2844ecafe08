/**
 * The MQTT tap: subscribes to every Pepeunit topic form, counts messages and bytes per UTC minute
 * and topic in memory, and hands the counts to a {@link CounterSink} every
 * `PU_NODE_TAP_FLUSH_INTERVAL_MS`.
 *
 * Durability: a message is acknowledged to the broker once it is counted in memory. A crash
 * therefore loses the counts since the last batch the sink accepted, which is one flush interval
 * plus the time of any sink outage in progress. A clean {@link Tap.stop} writes everything first.
 */
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import mqtt, { ErrorWithSubackPacket, type IConnackPacket, type MqttClient } from "mqtt";
import type { Config } from "../../config.ts";
import type { DatabaseLike } from "../../db/client.ts";
import { getNodeLogger } from "../../logging.ts";
import type { CounterSink } from "../../timeseries/types.ts";
import { PEPEUNIT_MAX_PAYLOAD_BYTES } from "../topics.ts";
import { AttributionCache, type AttributionCacheOptions } from "./attribution.ts";
import {
  describeBrokerUrl,
  planTapConnection,
  sharedFilter,
  tapTopicFilters,
} from "./connection.ts";
import { TopicCounters, totalCounts } from "./counters.ts";
import { Flusher, type FlusherStats } from "./flusher.ts";
import { RecentRate } from "./rate.ts";
import { RedeliveryFilter } from "./redelivery.ts";

const logger = getNodeLogger("metering", "tap");

export interface TapOptions {
  config: Config;
  db: DatabaseLike;
  sink: CounterSink;
  /** Maximum distinct (minute, topic) keys held in memory; 1,000,000 by default. */
  maxPendingTopics?: number;
  /** Maximum wait after a failed flush; 30 seconds by default. */
  maxBackoffMs?: number;
  /** Flush attempts during {@link Tap.stop} before the remaining counts are logged as lost; 5. */
  shutdownFlushAttempts?: number;
  /** Session expiry asked of an MQTT 5 broker, in seconds; 300 by default. */
  sessionExpirySeconds?: number;
  attribution?: AttributionCacheOptions;
  /** Called for every counted message; the bridge traffic monitor uses it. Must not throw. */
  onMessage?: (topic: string, nowMs: number) => void;
}

export interface TapStats extends FlusherStats {
  tapId: string;
  connected: boolean;
  /** True when the tap shares the stream with other taps through `$share/<group>/...`. */
  sharedSubscription: boolean;
  messagesReceived: number;
  bytesReceived: number;
  /** Messages on topics that start with `$`: broker internals, never counted as load. */
  brokerTopicMessages: number;
  /** Counted messages whose payload exceeds Pepeunit's 256 KiB limit. */
  oversizedMessages: number;
  /** Counted messages that went to an overflow row because too many topics were pending. */
  overflowMessages: number;
  /** Distinct (minute, topic) keys in memory. */
  pendingTopics: number;
  disconnects: number;
  /** QoS 1 messages the broker sent again after a reconnect, already counted, so skipped. */
  redeliveriesSkipped: number;
  /** Successful subscriptions: one per connect, including reconnects. */
  subscribeCount: number;
  /**
   * Estimate, not a count: the recent rate times the disconnected time, summed over every
   * disconnect. Messages the broker queued for the persistent session are not missed, so this is
   * an upper bound for QoS 1 traffic.
   */
  missedMessagesEstimate: number;
}

export interface Tap {
  /** Resolves once the tap has subscribed for the first time. */
  readonly subscribed: Promise<void>;
  /** Unsubscribes, disconnects and writes the remaining counts; logs any it could not write. */
  stop(): Promise<void>;
  stats(): TapStats;
}

/**
 * Starts a tap. Returns at once; the MQTT client connects and reconnects in the background and
 * logs each step. With no `PU_NODE_MQTT_URL` it connects to the embedded broker, which the caller
 * starts (see `embedded-broker.ts`). That broker has no shared subscriptions, so only one tap may
 * read it.
 */
export async function startTap(options: TapOptions): Promise<Tap> {
  const { config } = options;
  const tapId = config.tapId ?? `${hostname()}-${process.pid}`;
  const plan = await planTapConnection(config, tapId, options.sessionExpirySeconds);
  const brokerText = describeBrokerUrl(plan.url);

  const counters = new TopicCounters(options.maxPendingTopics ?? 1_000_000);
  const flusher = new Flusher({
    tapId,
    localDomain: config.pepeunitDomain,
    counters,
    sink: options.sink,
    attribution: new AttributionCache(options.db, options.attribution),
  });
  const rate = new RecentRate(Date.now());
  const redeliveries = new RedeliveryFilter();

  const counts = {
    messagesReceived: 0,
    bytesReceived: 0,
    brokerTopicMessages: 0,
    oversizedMessages: 0,
    disconnects: 0,
    redeliveriesSkipped: 0,
    subscribeCount: 0,
    missedMessagesEstimate: 0,
  };

  let connected = false;
  let sharedSubscription = false;
  let disconnectedAt: number | undefined;
  let rateAtDisconnect = 0;
  let stopping = false;
  let oversizedLoggedAt = Number.NEGATIVE_INFINITY;
  let oversizedLogged = 0;

  let resolveSubscribed: () => void = () => {};
  const subscribed = new Promise<void>((resolve) => {
    resolveSubscribed = resolve;
  });

  logger.info("Starting tap {tapId} on {broker}", { tapId, broker: brokerText });
  const client: MqttClient = mqtt.connect(plan.url.href, plan.options);

  client.on("message", (topic, payload, packet) => {
    if (redeliveries.isRedelivery(packet.messageId, packet.dup)) {
      counts.redeliveriesSkipped += 1;
      return;
    }
    // '$' is 36. Wildcard filters do not match such topics, so this only guards against brokers
    // that deliver them anyway.
    if (topic.charCodeAt(0) === 36) {
      counts.brokerTopicMessages += 1;
      return;
    }
    const now = Date.now();
    counters.add(topic, payload.length, now);
    options.onMessage?.(topic, now);
    rate.record(now);
    counts.messagesReceived += 1;
    counts.bytesReceived += payload.length;
    if (payload.length > PEPEUNIT_MAX_PAYLOAD_BYTES) {
      counts.oversizedMessages += 1;
      // At most one line a minute, because a flood of large messages would flood the log too.
      if (now - oversizedLoggedAt >= 60_000) {
        logger.warning(
          "Counted {count} messages over the 256 KiB limit, latest {bytes} B on {topic}",
          {
            count: counts.oversizedMessages - oversizedLogged,
            topic,
            bytes: payload.length,
          },
        );
        oversizedLoggedAt = now;
        oversizedLogged = counts.oversizedMessages;
      }
    }
  });

  client.on("connect", (connack: IConnackPacket) => {
    connected = true;
    const sessionPresent = connack.sessionPresent;
    // Only a resumed session redelivers; a new one numbers its packets afresh.
    if (!sessionPresent) redeliveries.reset();
    if (disconnectedAt !== undefined) {
      const seconds = (Date.now() - disconnectedAt) / 1000;
      const estimate = Math.round(rateAtDisconnect * seconds);
      counts.missedMessagesEstimate += estimate;
      logger.warning(
        "Reconnected to {broker} after {seconds} s; estimated up to {estimate} messages missed",
        { broker: brokerText, seconds, estimate, rate: rateAtDisconnect, sessionPresent },
      );
      disconnectedAt = undefined;
    } else {
      logger.info("Connected to {broker}", { broker: brokerText, sessionPresent });
    }
    // An MQTT 5 broker reports whether it supports `$share`; absent means it does (MQTT 5 §3.2.2.3.15).
    sharedSubscription =
      !plan.embedded && connack.properties?.sharedSubscriptionAvailable !== false;
    if (!plan.embedded && !sharedSubscription) {
      logger.warning("{broker} has no shared subscriptions; run only one tap against it", {
        broker: brokerText,
      });
    }
    void subscribe();
  });

  async function subscribe(): Promise<void> {
    const filters = tapTopicFilters(config.pepeunitDomain).map((filter) =>
      sharedSubscription ? sharedFilter(config.tapGroup, filter) : filter,
    );
    try {
      await client.subscribeAsync(filters, { qos: 1 });
      counts.subscribeCount += 1;
      logger.info("Subscribed to {filters}", { filters });
      resolveSubscribed();
    } catch (error) {
      if (error instanceof ErrorWithSubackPacket) {
        // The broker refused at least one filter (SUBACK 0x80 or an MQTT 5 reason code), usually
        // by its authorisation. Topics of a refused filter are not counted until an operator
        // fixes it and the tap reconnects.
        logger.error("Broker rejected the tap subscriptions {filters}: {error}", {
          filters,
          error,
        });
        return;
      }
      // A disconnect during SUBSCRIBE ends here; the next connect subscribes again.
      logger.warning("Subscribing to {filters} failed: {error}", { filters, error });
    }
  }

  client.on("close", () => {
    if (!connected) return;
    connected = false;
    if (stopping) return;
    counts.disconnects += 1;
    disconnectedAt = Date.now();
    rateAtDisconnect = rate.perSecond(disconnectedAt);
    logger.warning("Disconnected from {broker}; recent rate {rate} messages/s", {
      broker: brokerText,
      rate: rateAtDisconnect,
    });
  });
  // While the broker is down the client retries every second. The log gets the first failure in
  // full, then one line a minute with the number of repeats.
  let repeatedErrors = 0;
  let errorLoggedAt = Number.NEGATIVE_INFINITY;
  client.on("reconnect", () => {
    if (repeatedErrors === 0) logger.info("Reconnecting to {broker}", { broker: brokerText });
  });
  client.on("connect", () => {
    repeatedErrors = 0;
    errorLoggedAt = Number.NEGATIVE_INFINITY;
  });
  client.on("error", (error) => {
    const now = Date.now();
    repeatedErrors += 1;
    if (repeatedErrors === 1) {
      logger.error("MQTT client error on {broker}: {error}", { broker: brokerText, error });
      errorLoggedAt = now;
    } else if (now - errorLoggedAt >= 60_000) {
      logger.error("MQTT client still failing on {broker} ({count} errors so far): {message}", {
        broker: brokerText,
        count: repeatedErrors,
        message: error.message,
      });
      errorLoggedAt = now;
    }
  });

  const flushIntervalMs = config.tapFlushIntervalMs;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  function schedule(delay: number): void {
    timer = setTimeout(() => {
      running = runFlush();
    }, delay);
  }

  async function runFlush(): Promise<void> {
    const ok = await flusher.flush();
    failures = ok ? 0 : failures + 1;
    if (stopping) return;
    schedule(ok ? flushIntervalMs : Math.min(flushIntervalMs * 2 ** failures, maxBackoffMs));
  }

  schedule(flushIntervalMs);

  function stats(): TapStats {
    // During a disconnect the estimate grows with the time spent away.
    const ongoing =
      disconnectedAt === undefined
        ? 0
        : Math.round((rateAtDisconnect * (Date.now() - disconnectedAt)) / 1000);
    return {
      tapId,
      connected,
      sharedSubscription,
      ...counts,
      missedMessagesEstimate: counts.missedMessagesEstimate + ongoing,
      overflowMessages: counters.overflowMessages,
      pendingTopics: counters.keyCount,
      ...flusher.stats,
    };
  }

  let stopped: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopped ??= shutDown();
    return stopped;
  }

  async function shutDown(): Promise<void> {
    stopping = true;
    logger.info("Stopping tap {tapId}", { tapId });
    clearTimeout(timer);
    await running;

    if (client.connected) {
      const filters = tapTopicFilters(config.pepeunitDomain).map((filter) =>
        sharedSubscription ? sharedFilter(config.tapGroup, filter) : filter,
      );
      try {
        await client.unsubscribeAsync(filters);
      } catch (error) {
        logger.warning("Unsubscribing failed: {error}", { error });
      }
      // Session expiry 0 on DISCONNECT ends the persistent session, so the broker stops queuing
      // messages for a tap that is not coming back.
      await client.endAsync(
        false,
        plan.embedded ? {} : { properties: { sessionExpiryInterval: 0 } },
      );
    } else {
      await client.endAsync(true);
    }

    const attempts = options.shutdownFlushAttempts ?? 5;
    for (let attempt = 1; attempt <= attempts && !flusher.idle; attempt += 1) {
      if (!(await flusher.flush()) && attempt < attempts) {
        await sleep(Math.min(200 * 2 ** attempt, maxBackoffMs));
      }
    }
    if (!flusher.idle) {
      const lost = totalCounts(counters.take());
      const pendingMessages = flusher.stats.pendingMessages;
      logger.error("Tap stopped with {messages} counted messages not written", {
        messages: lost.messages + pendingMessages,
        pendingBatchMessages: pendingMessages,
        unbatchedMessages: lost.messages,
        unbatchedBytes: lost.bytes,
      });
    }
    logger.info("Stopped tap {tapId}", { ...stats() });
  }

  return { subscribed, stop, stats };
}
