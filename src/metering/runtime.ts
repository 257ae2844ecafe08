/**
 * Starts metering in a node process: the time-series store in every role, the embedded broker
 * and the MQTT tap in the `tap` role, and the periodic metering jobs in the `worker` role
 * (`all` runs everything).
 */
import type { MessageQueueDepth } from "@fedify/fedify";
import type pg from "pg";
import type { Config } from "../config.ts";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import type { Database } from "../db/client.ts";
import { createMetricsRoute, type NodeMetrics } from "../http/metrics.ts";
import { runPeriodically } from "../jobs/loop.ts";
import { getNodeLogger } from "../logging.ts";
import { createTimeSeriesStore } from "../timeseries/factory.ts";
import type { TimeSeriesStore } from "../timeseries/store.ts";
import type { CounterBatch, CounterSink } from "../timeseries/types.ts";
import { BackendChannelScraper, backendChannelJob } from "./channels/backend-scraper.ts";
import { TapChannelRecorder } from "./channels/tap-channel.ts";
import { EmbeddedMqttBroker } from "./embedded-broker.ts";
import { readBrokerUptime } from "./emqx/broker.ts";
import { createEmqxClientFromConfig } from "./emqx/client.ts";
import { attributeByDomain, HotTopicMeter } from "./emqx/topic-metrics.ts";
import { type ErrorCounter, ErrorCountFlusher } from "./errors/counter.ts";
import {
  aggregationSpaceJob,
  createNodeStateProbes,
  NodeStateCollector,
  nodeStateJob,
} from "./state/collector.ts";
import { startTap, type Tap } from "./tap/tap.ts";

const logger = getNodeLogger("metering");

/** Advisory lock key of the EMQX hot-topic meter: "PUEMQX" as ASCII. */
const EMQX_METER_LOCK_KEY = 0x5055454d5158;

/** How often minute counters are rolled up into hours and expired data is dropped. */
const ROLLUP_INTERVAL_MS = 5 * 60_000;

export interface MeteringOptions {
  config: Config;
  pool: pg.Pool;
  db: Database;
  errorCounter: ErrorCounter;
  /** Queues whose depth `/metrics` reports. */
  queues: Record<string, { getDepth(): Promise<MessageQueueDepth> }>;
  signal: AbortSignal;
  /** Called by the tap for every counted message. */
  onTapMessage?: (topic: string, nowMs: number) => void;
}

export interface MeteringRuntime {
  store: TimeSeriesStore;
  metrics: NodeMetrics;
  /** The broker the tap reads, when this process runs the tap. */
  brokerUrl: URL | undefined;
  /** Resolves when every metering job has stopped after the signal aborted. */
  jobs: Promise<unknown>[];
  /** Stops the tap (writing its last counts), the broker and the flushers; closes the store. */
  stop(): Promise<void>;
}

/**
 * Wraps the store so that `/metrics` and the MQTT channel counters see every flush of the tap.
 */
function countingSink(
  store: CounterSink,
  metrics: NodeMetrics,
  channel: TapChannelRecorder,
): CounterSink {
  return {
    async writeCounterBatch(batch: CounterBatch) {
      try {
        const outcome = await store.writeCounterBatch(batch);
        if (outcome === "written") await channel.record(batch);
        let messages = 0;
        let bytes = 0;
        for (const row of batch.rows) {
          messages += row.messages;
          bytes += row.bytes;
        }
        if (outcome === "written") metrics.tap.recordFlush({ messages, bytes });
        return outcome;
      } catch (error) {
        metrics.tap.recordFlushFailure();
        throw error;
      }
    },
  };
}

export async function startMetering(options: MeteringOptions): Promise<MeteringRuntime> {
  const { config, pool, db, signal } = options;
  const store = createTimeSeriesStore(config, pool);
  await store.migrate();
  const metrics = createMetricsRoute({ db, queues: options.queues });
  const jobs: Promise<unknown>[] = [];
  const closers: (() => Promise<void>)[] = [];

  const runsTap = config.role === "all" || config.role === "tap";
  const runsWorker = config.role === "all" || config.role === "worker";

  let broker: EmbeddedMqttBroker | undefined;
  let tap: Tap | undefined;
  if (runsTap) {
    if (!config.mqttUrl) {
      broker = new EmbeddedMqttBroker({ port: config.embeddedMqttPort });
      try {
        await broker.start();
      } catch (error) {
        throw new Error(
          `The embedded MQTT broker cannot listen on 127.0.0.1:${config.embeddedMqttPort}; ` +
            "set PU_NODE_EMBEDDED_MQTT_PORT to a free port, or PU_NODE_MQTT_URL to your broker",
          { cause: error },
        );
      }
    }
    // With port 0 the broker picked its port; the tap must connect to that one.
    const tapConfig = broker ? { ...config, embeddedMqttPort: broker.port } : config;
    const channel = new TapChannelRecorder(store);
    tap = await startTap({
      config: tapConfig,
      db,
      sink: countingSink(store, metrics, channel),
      ...(options.onTapMessage ? { onMessage: options.onTapMessage } : {}),
    });
    let reportedMissed = 0;
    const missedReport = setInterval(() => {
      const missed = tap?.stats().missedMessagesEstimate ?? 0;
      if (missed > reportedMissed) metrics.tap.recordMissedMessages(missed - reportedMissed);
      reportedMissed = missed;
    }, 10_000);
    missedReport.unref();
    closers.push(async () => clearInterval(missedReport));
  }

  // Every process counts its own error records (and a web process those the backend ingests),
  // so every process writes them; rows of one minute and fingerprint add up in the store.
  const errorFlusher = new ErrorCountFlusher(options.errorCounter, store);
  if (runsWorker) {
    jobs.push(
      runPeriodically(
        {
          name: "roll-up-and-expire-time-series",
          intervalMs: ROLLUP_INTERVAL_MS,
          run: async () => {
            const now = new Date();
            const rolled = await store.rollUp(now);
            await store.applyRetention(now);
            logger.debug("Rolled up {rows} hourly rows", { rows: rolled.rows });
            return false;
          },
        },
        signal,
      ),
    );

    const emqx = createEmqxClientFromConfig(config);
    const state = createNodeStateProbes(config, {
      db,
      ...(emqx ? { brokerUptime: async () => (await readBrokerUptime(emqx)).uptimeSeconds } : {}),
    });
    closers.push(state.close);
    jobs.push(runPeriodically(nodeStateJob(new NodeStateCollector(state.probes), store), signal));

    const aggregation = aggregationSpaceJob(config, db, store);
    if (aggregation) {
      closers.push(aggregation.close);
      jobs.push(runPeriodically(aggregation.job, signal));
    }

    if (config.pepeunitMetricsUrl) {
      const scraper = new BackendChannelScraper({ url: config.pepeunitMetricsUrl });
      jobs.push(runPeriodically(backendChannelJob(scraper, store), signal));
    }

    if (emqx) {
      // The meter treats every topic registered in EMQX as its own, so one worker per database
      // runs it: the holder of a PostgreSQL advisory lock. Another worker takes over when the
      // holder's connection ends.
      const lock = new AdvisoryLockHolder(pool, EMQX_METER_LOCK_KEY);
      closers.push(() => lock.release());
      const meter = new HotTopicMeter({
        client: emqx,
        sink: store,
        attribute: attributeByDomain(config.pepeunitDomain),
        hotTopics: async () =>
          (await store.hotList("topic", "hour", new Date(), 500)).map((entry) => entry.key),
      });
      jobs.push(
        runPeriodically(
          {
            name: "emqx-hot-topic-metrics",
            intervalMs: 60_000,
            run: async () => {
              if (await lock.hold()) await meter.runOnce();
              return false;
            },
          },
          signal,
        ),
      );
    }
  }

  return {
    store,
    metrics,
    brokerUrl: runsTap ? (broker?.url ?? config.mqttUrl) : undefined,
    jobs,
    stop: async () => {
      await tap?.stop();
      await broker?.stop();
      await errorFlusher.stop();
      for (const close of closers) await close();
      await store.close();
      logger.info("Metering stopped");
    },
  };
}
