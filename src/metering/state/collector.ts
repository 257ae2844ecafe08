/**
 * The node-state collector: runs every probe with a time limit and merges what they return into
 * one {@link NodeStateSample}. A probe that fails or times out is logged (rate-limited) and its
 * values are left out of the sample; nothing is estimated in its place.
 */
import path from "node:path";
import { type ClickHouseClient, createClient } from "@clickhouse/client";
import type { Config } from "../../config.ts";
import type { DatabaseLike } from "../../db/client.ts";
import type { PeriodicJob } from "../../jobs/loop.ts";
import { getNodeLogger } from "../../logging.ts";
import type { NodeStateSample } from "../../timeseries/types.ts";
import { type AggregationSpaceSnapshot, measureAggregationSpace } from "./aggregation-space.ts";
import { readClickHouseSpace, readPostgresSize } from "./databases.ts";
import { measureDirectory, readDiskSpace } from "./disk.ts";
import { createCpuProbe, createNetworkProbe, readMemory, readUptime } from "./host.ts";
import { readMinioSpace } from "./minio.ts";
import { ProbeFailureLog, withTimeout } from "./probe.ts";

const logger = getNodeLogger("metering", "state");

export interface NodeStateProbe {
  /** Short name used in logs, e.g. `clickhouse`. */
  name: string;
  /** Overrides the collector's time limit for this probe. */
  timeoutMs?: number;
  collect(signal: AbortSignal): Promise<Record<string, number>>;
}

/** Destination of node-state samples; the time-series store implements it. */
export interface NodeStateSink {
  writeNodeState(sample: NodeStateSample): Promise<void>;
}

export interface NodeStateCollectorOptions {
  /** Time limit of each probe in milliseconds; 5000 unless set. */
  timeoutMs?: number;
  now?: () => Date;
  failureLog?: ProbeFailureLog;
}

export class NodeStateCollector {
  readonly #probes: readonly NodeStateProbe[];
  readonly #timeoutMs: number;
  readonly #now: () => Date;
  readonly #failures: ProbeFailureLog;

  constructor(probes: readonly NodeStateProbe[], options: NodeStateCollectorOptions = {}) {
    this.#probes = probes;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#now = options.now ?? (() => new Date());
    this.#failures = options.failureLog ?? new ProbeFailureLog();
  }

  /** Runs all probes at once and returns their merged values; never throws for a probe. */
  async collect(): Promise<NodeStateSample> {
    const at = this.#now();
    const results = await Promise.all(
      this.#probes.map(async (probe) => {
        try {
          const values = await withTimeout(probe.name, probe.timeoutMs ?? this.#timeoutMs, (s) =>
            probe.collect(s),
          );
          this.#failures.succeeded(probe.name);
          return values;
        } catch (error) {
          this.#failures.failed(probe.name, error);
          return {};
        }
      }),
    );
    const values: Record<string, number> = {};
    for (const result of results) {
      for (const [name, value] of Object.entries(result)) {
        if (Number.isFinite(value)) values[name] = value;
      }
    }
    return { at, values };
  }
}

export interface NodeStateDependencies {
  db: DatabaseLike;
  /**
   * Broker uptime in seconds, or `undefined` when the broker does not report it: the EMQX client
   * or {@link watchMosquittoUptime} provides it.
   */
  brokerUptime?: (signal: AbortSignal) => Promise<number | undefined>;
}

/**
 * Builds the probes the configuration calls for. Host, process and PostgreSQL probes always run.
 * The PostgreSQL disk is measured only when it is embedded, because a remote server's disk is not
 * visible from here. ClickHouse, MinIO and the repository cache run when configured, and free disk
 * covers every local path among them. Returns the probes and a `close` that releases clients.
 */
export function createNodeStateProbes(
  config: Config,
  dependencies: NodeStateDependencies,
): { probes: NodeStateProbe[]; close: () => Promise<void> } {
  const cpu = createCpuProbe();
  const network = createNetworkProbe();
  const probes: NodeStateProbe[] = [
    { name: "cpu", collect: cpu },
    { name: "memory", collect: () => readMemory() },
    { name: "network", collect: network },
    { name: "uptime", collect: async () => readUptime() },
    { name: "postgres", collect: () => readPostgresSize(dependencies.db) },
  ];
  const clients: ClickHouseClient[] = [];

  const { brokerUptime } = dependencies;
  if (brokerUptime !== undefined) {
    probes.push({
      name: "broker-uptime",
      collect: async (signal): Promise<Record<string, number>> => {
        const seconds = await brokerUptime(signal);
        return seconds === undefined ? {} : { broker_uptime_seconds: seconds };
      },
    });
  }

  const diskPaths = new Map<string, string>([["data_dir", config.dataDir]]);
  if (config.databaseUrl === undefined) {
    diskPaths.set("postgres", path.join(config.dataDir, "postgres"));
  }

  if (config.clickhouseUrl !== undefined) {
    const client = createClient({ url: config.clickhouseUrl.href });
    clients.push(client);
    probes.push({ name: "clickhouse", collect: (signal) => readClickHouseSpace(client, signal) });
  }

  const { minioMetricsUrl, minioMetricsToken } = config;
  if (minioMetricsUrl !== undefined) {
    probes.push({
      name: "minio",
      collect: (signal) => readMinioSpace(minioMetricsUrl, minioMetricsToken, signal),
    });
  }

  const { repoCacheDir } = config;
  if (repoCacheDir !== undefined) {
    diskPaths.set("repo_cache", repoCacheDir);
    probes.push({
      name: "repo-cache",
      // Walking a large cache takes longer than a query; it still has a bound.
      timeoutMs: 30_000,
      collect: async (signal) => {
        const size = await measureDirectory(repoCacheDir, signal);
        return { repo_cache_bytes: size.bytes, repo_cache_files: size.files };
      },
    });
  }

  probes.push({ name: "disk", collect: () => readDiskSpace(diskPaths) });

  return {
    probes,
    close: async () => {
      await Promise.all(clients.map((client) => client.close()));
    },
  };
}

/** Creates a periodic job that collects one sample and writes it; a failed write fails the run. */
export function nodeStateJob(
  collector: NodeStateCollector,
  sink: NodeStateSink,
  intervalMs = 60_000,
): PeriodicJob {
  return {
    name: "node-state",
    intervalMs,
    run: async () => {
      const sample = await collector.collect();
      await sink.writeNodeState(sample);
      logger.debug("Wrote node state with {count} values", {
        count: Object.keys(sample.values).length,
      });
      return false;
    },
  };
}

/** Destination of aggregation-space snapshots. */
export interface AggregationSpaceSink {
  writeAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void>;
}

/**
 * A periodic job that measures Pepeunit's aggregation space (`config.pepeunitClickhouseUrl`)
 * and writes it; returns `undefined` when that URL is not set. `close` releases the client.
 */
export function aggregationSpaceJob(
  config: Config,
  db: DatabaseLike,
  sink: AggregationSpaceSink,
  intervalMs = 15 * 60_000,
): { job: PeriodicJob; close: () => Promise<void> } | undefined {
  if (config.pepeunitClickhouseUrl === undefined) return undefined;
  const client = createClient({ url: config.pepeunitClickhouseUrl.href });
  return {
    job: {
      name: "aggregation-space",
      intervalMs,
      run: async () => {
        logger.info("Measuring Pepeunit aggregation space");
        const snapshot = await withTimeout("aggregation-space", 120_000, (signal) =>
          measureAggregationSpace(db, client, signal),
        );
        await sink.writeAggregationSpace(snapshot);
        logger.info("Measured aggregation space of {unitNodes} UnitNodes and {users} users", {
          unitNodes: new Set(snapshot.unitNodes.map((entry) => entry.unitNodeId)).size,
          users: snapshot.users.length,
          missingTables: snapshot.missingTables,
        });
        return false;
      },
    },
    close: () => client.close(),
  };
}
