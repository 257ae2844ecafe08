/**
 * The ClickHouse time-series store, for production instances. It uses only what ClickHouse
 * 18.16 supports (no TTL, no query parameters, no DateTime64, no LowCardinality, JSONEachRow only)
 * and sends one setting, `output_format_json_quote_64bit_integers`, which every version supports.
 *
 * NOTE: the statements are meant to run unchanged on ClickHouse 25.x, which Pepeunit deploys,
 * but only 18.16 is tested here.
 */
import { type ClickHouseClient, createClient } from "@clickhouse/client";
import { getNodeLogger } from "../../logging.ts";
import type { EmqxTopicCounterBatch } from "../../metering/emqx/topic-metrics.ts";
import type { AggregationSpaceSnapshot } from "../../metering/state/aggregation-space.ts";
import {
  type CounterGroup,
  type CounterReader,
  type CounterSumOptions,
  computeHotList,
  computeLoadReport,
  type WindowPlan,
} from "../load.ts";
import { retentionCutoffs } from "../schedule.ts";
import type {
  ChannelTotal,
  EmqxTopicTotal,
  ErrorFrequency,
  HotEntry,
  HotSubject,
  HotWindow,
  LoadReport,
  LoadSubject,
  RetentionResult,
  RollUpResult,
  TimeSeriesStore,
} from "../store.ts";
import { floorMinute, fromUnixSeconds, toUnixSeconds } from "../time.ts";
import type {
  BatchWriteOutcome,
  Channel,
  ChannelCountRow,
  CounterBatch,
  ErrorCountRow,
  ErrorLevel,
  ErrorSource,
  NodeStateSample,
} from "../types.ts";
import {
  checkAggregationSpaceSnapshot,
  checkLimit,
  checkNodeStateSample,
  checkRange,
  checkTime,
  normalizeChannelCounts,
  normalizeCounterBatch,
  normalizeEmqxTopicCounterBatch,
  normalizeErrorCounts,
} from "../validation.ts";
import * as aggregationSpace from "./aggregation-space.ts";
import * as counters from "./counters.ts";
import * as emqxCounters from "./emqx-counters.ts";
import { migrateClickHouse } from "./migrations.ts";
import { dropExpiredPartitions } from "./retention.ts";
import { dateTimeLiteral } from "./sql.ts";

const logger = getNodeLogger("timeseries", "clickhouse");

const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Returns the database named by the URL path, or `default`; throws on an unusable name. */
export function clickHouseDatabase(url: URL): string {
  const name = decodeURIComponent(url.pathname.replace(/^\/+|\/+$/g, "")) || "default";
  if (!DATABASE_NAME.test(name)) {
    throw new Error(
      `Invalid ClickHouse database ${JSON.stringify(name)} in PU_NODE_CLICKHOUSE_URL: expected letters, digits and _ such as http://127.0.0.1:8123/pepeunit_node`,
    );
  }
  return name;
}

export class ClickHouseTimeSeriesStore implements TimeSeriesStore, CounterReader {
  readonly #url: URL;
  readonly #database: string;
  readonly #client: ClickHouseClient;

  /** `url` is the server's HTTP URL; its path names the database and may carry credentials. */
  constructor(url: URL) {
    this.#url = new URL(url.href);
    this.#database = clickHouseDatabase(url);
    this.#client = createClient({
      url: url.href,
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
  }

  /** Creates the database when missing and applies pending migrations. */
  async migrate(): Promise<void> {
    const serverUrl = new URL(this.#url.href);
    serverUrl.pathname = "/";
    const server = createClient({ url: serverUrl.href });
    try {
      await server.command({ query: `CREATE DATABASE IF NOT EXISTS ${this.#database}` });
    } finally {
      await server.close();
    }
    await migrateClickHouse(this.#client);
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  async writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
    const normalized = normalizeCounterBatch(batch);
    if (normalized.rows.length === 0) return "written";
    const outcome = await counters.writeCounterBatch(this.#client, normalized);
    if (outcome === "duplicate") {
      logger.info("Skipped counter batch {batchId} of tap {tapId}: already written", {
        batchId: normalized.batchId,
        tapId: normalized.tapId,
      });
    }
    return outcome;
  }

  async rollUp(now: Date): Promise<RollUpResult> {
    checkTime("now", now);
    logger.info("Rolling up topic counters at {now}", { now: now.toISOString() });
    try {
      const result = await counters.rollUp(this.#client, now);
      logger.info("Rolled up hours {from} to {to} into {rows} rows", {
        from: result.from.toISOString(),
        to: result.to.toISOString(),
        rows: result.rows,
      });
      return result;
    } catch (error) {
      logger.error("Rollup of topic counters failed: {error}", { error });
      throw error;
    }
  }

  async applyRetention(now: Date): Promise<RetentionResult> {
    checkTime("now", now);
    logger.info("Applying time-series retention at {now}", { now: now.toISOString() });
    try {
      const cutoffs = retentionCutoffs(now, await counters.readRollupWatermark(this.#client));
      const dropped = await dropExpiredPartitions(this.#client, cutoffs);
      logger.info("Applied time-series retention at {now}; dropped partitions {dropped}", {
        now: now.toISOString(),
        dropped,
      });
      return cutoffs;
    } catch (error) {
      logger.error("Time-series retention failed: {error}", { error });
      throw error;
    }
  }

  readRollupWatermark(): Promise<Date | null> {
    return counters.readRollupWatermark(this.#client);
  }

  sumCounters(group: CounterGroup, plans: WindowPlan[], options?: CounterSumOptions) {
    return counters.sumCounters(this.#client, group, plans, options);
  }

  loadReport(subject: LoadSubject, now: Date): Promise<LoadReport> {
    return computeLoadReport(this, subject, now);
  }

  hotList(subject: HotSubject, window: HotWindow, now: Date, limit: number): Promise<HotEntry[]> {
    return computeHotList(this, subject, window, now, limit);
  }

  async writeNodeState(sample: NodeStateSample): Promise<void> {
    const checked = checkNodeStateSample(sample);
    const names = Object.keys(checked.values);
    await this.#client.insert({
      table: "node_state_minutes",
      values: [
        {
          minute: toUnixSeconds(floorMinute(checked.at)),
          names,
          values: names.map((name) => checked.values[name]),
          version: counters.nextVersion(),
        },
      ],
      format: "JSONEachRow",
    });
  }

  async #readNodeStates(where: string, tail: string): Promise<NodeStateSample[]> {
    const result = await this.#client.query({
      query: `SELECT toUnixTimestamp(minute) AS minute, names, values
        FROM node_state_minutes FINAL ${where} ${tail}`,
      format: "JSONEachRow",
    });
    const rows = await result.json<{ minute: number; names: string[]; values: number[] }>();
    return rows.map((row) => ({
      at: fromUnixSeconds(row.minute),
      values: Object.fromEntries(row.names.map((name, index) => [name, row.values[index] ?? 0])),
    }));
  }

  async latestNodeState(): Promise<NodeStateSample | null> {
    const [sample] = await this.#readNodeStates("", "ORDER BY minute DESC LIMIT 1");
    return sample ?? null;
  }

  nodeStateHistory(from: Date, to: Date): Promise<NodeStateSample[]> {
    const [start, end] = checkRange(from, to);
    return this.#readNodeStates(
      `WHERE minute >= ${dateTimeLiteral(start)} AND minute < ${dateTimeLiteral(end)}`,
      "ORDER BY minute",
    );
  }

  async writeErrorCounts(rows: ErrorCountRow[]): Promise<void> {
    const merged = normalizeErrorCounts(rows);
    if (merged.length === 0) return;
    const version = counters.nextVersion();
    await this.#client.insert({
      table: "error_count_minutes",
      values: merged.map((row) => ({
        minute: toUnixSeconds(row.minute),
        source: row.source,
        fingerprint: row.fingerprint,
        level: row.level,
        category: row.category,
        sample: row.sample,
        count: row.count,
        version,
      })),
      format: "JSONEachRow",
    });
  }

  async errorFrequencies(from: Date, to: Date): Promise<ErrorFrequency[]> {
    const [start, end] = checkRange(from, to);
    // The latest minute's sample wins, and within one minute the latest write.
    const result = await this.#client.query({
      query: `SELECT toString(source) AS source_name, fingerprint,
          toString(argMax(level, (minute, version))) AS latest_level,
          argMax(category, (minute, version)) AS latest_category,
          argMax(sample, (minute, version)) AS latest_sample,
          sum(count) AS total,
          toUnixTimestamp(min(minute)) AS first_minute,
          toUnixTimestamp(max(minute)) AS last_minute
        FROM error_count_minutes
        WHERE minute >= ${dateTimeLiteral(start)} AND minute < ${dateTimeLiteral(end)}
        GROUP BY source, fingerprint
        ORDER BY total DESC, source_name, fingerprint`,
      format: "JSONEachRow",
    });
    const rows = await result.json<{
      source_name: ErrorSource;
      fingerprint: string;
      latest_level: ErrorLevel;
      latest_category: string;
      latest_sample: string;
      total: number;
      first_minute: number;
      last_minute: number;
    }>();
    return rows.map((row) => ({
      source: row.source_name,
      fingerprint: row.fingerprint,
      level: row.latest_level,
      category: row.latest_category,
      sample: row.latest_sample,
      count: row.total,
      firstMinute: fromUnixSeconds(row.first_minute),
      lastMinute: fromUnixSeconds(row.last_minute),
    }));
  }

  async writeChannelCounts(rows: ChannelCountRow[]): Promise<void> {
    const latest = normalizeChannelCounts(rows);
    if (latest.length === 0) return;
    const version = counters.nextVersion();
    await this.#client.insert({
      table: "channel_count_minutes",
      values: latest.map((row) => ({
        minute: toUnixSeconds(row.minute),
        channel: row.channel,
        source: row.source,
        count: row.count,
        version,
      })),
      format: "JSONEachRow",
    });
  }

  async channelTotals(from: Date, to: Date): Promise<ChannelTotal[]> {
    const [start, end] = checkRange(from, to);
    const result = await this.#client.query({
      query: `SELECT toString(channel) AS channel_name, sum(count) AS total
        FROM channel_count_minutes FINAL
        WHERE minute >= ${dateTimeLiteral(start)} AND minute < ${dateTimeLiteral(end)}
        GROUP BY channel
        ORDER BY channel_name`,
      format: "JSONEachRow",
    });
    const rows = await result.json<{ channel_name: Channel; total: number }>();
    return rows.map((row) => ({ channel: row.channel_name, count: row.total }));
  }

  async writeEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome> {
    const normalized = normalizeEmqxTopicCounterBatch(batch);
    if (normalized.rows.length === 0) return "written";
    const outcome = await emqxCounters.writeEmqxTopicCounters(this.#client, normalized);
    if (outcome === "duplicate") {
      logger.info("Skipped EMQX counter batch {batchId} of {source}: already written", {
        batchId: normalized.batchId,
        source: normalized.source,
      });
    }
    return outcome;
  }

  emqxTopicTotals(from: Date, to: Date, limit: number): Promise<EmqxTopicTotal[]> {
    const [start, end] = checkRange(from, to);
    return emqxCounters.emqxTopicTotals(this.#client, start, end, checkLimit(limit));
  }

  async writeAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void> {
    await aggregationSpace.writeAggregationSpace(
      this.#client,
      checkAggregationSpaceSnapshot(snapshot),
    );
  }

  latestAggregationSpace(): Promise<AggregationSpaceSnapshot | null> {
    return aggregationSpace.latestAggregationSpace(this.#client);
  }
}
