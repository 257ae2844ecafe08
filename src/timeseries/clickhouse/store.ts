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
import { BaseTimeSeriesStore, type RetentionRun } from "../base-store.ts";
import type { CounterGroup, CounterSumOptions, WindowPlan } from "../load.ts";
import { retentionCutoffs } from "../schedule.ts";
import type { ChannelTotal, EmqxTopicTotal, ErrorFrequency, RollUpResult } from "../store.ts";
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

export class ClickHouseTimeSeriesStore extends BaseTimeSeriesStore {
  readonly #url: URL;
  readonly #database: string;
  readonly #client: ClickHouseClient;

  /** `url` is the server's HTTP URL; its path names the database and may carry credentials. */
  constructor(url: URL) {
    super(logger);
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

  protected insertCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
    return counters.writeCounterBatch(this.#client, batch);
  }

  protected rollUpHours(now: Date): Promise<RollUpResult> {
    return counters.rollUp(this.#client, now);
  }

  protected async removeExpiredRows(now: Date): Promise<RetentionRun> {
    const cutoffs = retentionCutoffs(now, await counters.readRollupWatermark(this.#client));
    const droppedPartitions = await dropExpiredPartitions(this.#client, cutoffs);
    return { cutoffs, droppedPartitions };
  }

  readRollupWatermark(): Promise<Date | null> {
    return counters.readRollupWatermark(this.#client);
  }

  sumCounters(group: CounterGroup, plans: WindowPlan[], options?: CounterSumOptions) {
    return counters.sumCounters(this.#client, group, plans, options);
  }

  protected async insertNodeState(sample: NodeStateSample): Promise<void> {
    const names = Object.keys(sample.values);
    await this.#client.insert({
      table: "node_state_minutes",
      values: [
        {
          minute: toUnixSeconds(floorMinute(sample.at)),
          names,
          values: names.map((name) => sample.values[name]),
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

  protected selectNodeStates(start: Date, end: Date): Promise<NodeStateSample[]> {
    return this.#readNodeStates(
      `WHERE minute >= ${dateTimeLiteral(start)} AND minute < ${dateTimeLiteral(end)}`,
      "ORDER BY minute",
    );
  }

  protected async insertErrorCounts(rows: ErrorCountRow[]): Promise<void> {
    const version = counters.nextVersion();
    await this.#client.insert({
      table: "error_count_minutes",
      values: rows.map((row) => ({
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

  protected async selectErrorFrequencies(start: Date, end: Date): Promise<ErrorFrequency[]> {
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

  protected async insertChannelCounts(rows: ChannelCountRow[]): Promise<void> {
    const version = counters.nextVersion();
    await this.#client.insert({
      table: "channel_count_minutes",
      values: rows.map((row) => ({
        minute: toUnixSeconds(row.minute),
        channel: row.channel,
        source: row.source,
        count: row.count,
        version,
      })),
      format: "JSONEachRow",
    });
  }

  protected async selectChannelTotals(start: Date, end: Date): Promise<ChannelTotal[]> {
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

  protected insertEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome> {
    return emqxCounters.writeEmqxTopicCounters(this.#client, batch);
  }

  protected selectEmqxTopicTotals(
    start: Date,
    end: Date,
    limit: number,
  ): Promise<EmqxTopicTotal[]> {
    return emqxCounters.emqxTopicTotals(this.#client, start, end, limit);
  }

  protected insertAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void> {
    return aggregationSpace.writeAggregationSpace(this.#client, snapshot);
  }

  latestAggregationSpace(): Promise<AggregationSpaceSnapshot | null> {
    return aggregationSpace.latestAggregationSpace(this.#client);
  }
}
