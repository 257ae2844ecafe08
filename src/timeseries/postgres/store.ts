/**
 * The PostgreSQL time-series store: the embedded default, and the store for small instances
 * where ClickHouse does not run. Its tables come from the node's drizzle migrations.
 */
import { and, asc, desc, gte, lt, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import {
  aggregationSpaceMinutes,
  channelCountMinutes,
  counterBatches,
  emqxCounterBatches,
  emqxTopicCounterMinutes,
  errorCountMinutes,
  nodeStateMinutes,
  topicCounterHours,
  topicCounterMinutes,
} from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";
import type { EmqxTopicCounterBatch } from "../../metering/emqx/topic-metrics.ts";
import type { AggregationSpaceSnapshot } from "../../metering/state/aggregation-space.ts";
import { BaseTimeSeriesStore, type RetentionRun } from "../base-store.ts";
import type { CounterGroup, CounterSumOptions, WindowPlan } from "../load.ts";
import { retentionCutoffs } from "../schedule.ts";
import type { ChannelTotal, EmqxTopicTotal, ErrorFrequency, RollUpResult } from "../store.ts";
import { floorMinute } from "../time.ts";
import type {
  BatchWriteOutcome,
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

const logger = getNodeLogger("timeseries", "postgres");

export class PostgresTimeSeriesStore extends BaseTimeSeriesStore {
  readonly #db: Database;

  /** `db` belongs to the caller, who also closes its pool. */
  constructor(db: Database) {
    super(logger);
    this.#db = db;
  }

  /** Does nothing: the tables come with the node's PostgreSQL migrations. */
  async migrate(): Promise<void> {}

  /** Does nothing: the pool belongs to the caller. */
  async close(): Promise<void> {}

  protected insertCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
    return counters.writeCounterBatch(this.#db, batch);
  }

  protected rollUpHours(now: Date): Promise<RollUpResult> {
    return counters.rollUp(this.#db, now);
  }

  protected async removeExpiredRows(now: Date): Promise<RetentionRun> {
    return await this.#db.transaction(async (tx) => {
      const cutoffs = retentionCutoffs(now, await counters.readRollupWatermark(tx));
      if (cutoffs.minutesBefore !== null) {
        await tx
          .delete(topicCounterMinutes)
          .where(lt(topicCounterMinutes.minute, cutoffs.minutesBefore));
        await tx
          .delete(counterBatches)
          .where(lt(counterBatches.newestMinute, cutoffs.minutesBefore));
      }
      await tx.delete(topicCounterHours).where(lt(topicCounterHours.hour, cutoffs.hoursBefore));
      await tx.delete(errorCountMinutes).where(lt(errorCountMinutes.minute, cutoffs.errorsBefore));
      await tx.delete(nodeStateMinutes).where(lt(nodeStateMinutes.minute, cutoffs.longBefore));
      await tx
        .delete(channelCountMinutes)
        .where(lt(channelCountMinutes.minute, cutoffs.longBefore));
      await tx
        .delete(emqxTopicCounterMinutes)
        .where(lt(emqxTopicCounterMinutes.minute, cutoffs.emqxMinutesBefore));
      await tx
        .delete(emqxCounterBatches)
        .where(lt(emqxCounterBatches.newestMinute, cutoffs.emqxMinutesBefore));
      await tx
        .delete(aggregationSpaceMinutes)
        .where(lt(aggregationSpaceMinutes.minute, cutoffs.longBefore));
      return { cutoffs };
    });
  }

  readRollupWatermark(): Promise<Date | null> {
    return counters.readRollupWatermark(this.#db);
  }

  sumCounters(group: CounterGroup, plans: WindowPlan[], options?: CounterSumOptions) {
    return counters.sumCounters(this.#db, group, plans, options);
  }

  protected async insertNodeState(sample: NodeStateSample): Promise<void> {
    const minute = floorMinute(sample.at);
    await this.#db
      .insert(nodeStateMinutes)
      .values({ minute, values: sample.values })
      .onConflictDoUpdate({ target: nodeStateMinutes.minute, set: { values: sample.values } });
  }

  async latestNodeState(): Promise<NodeStateSample | null> {
    const rows = await this.#db
      .select()
      .from(nodeStateMinutes)
      .orderBy(desc(nodeStateMinutes.minute))
      .limit(1);
    const row = rows[0];
    return row ? { at: row.minute, values: row.values } : null;
  }

  protected async selectNodeStates(start: Date, end: Date): Promise<NodeStateSample[]> {
    const rows = await this.#db
      .select()
      .from(nodeStateMinutes)
      .where(and(gte(nodeStateMinutes.minute, start), lt(nodeStateMinutes.minute, end)))
      .orderBy(asc(nodeStateMinutes.minute));
    return rows.map((row) => ({ at: row.minute, values: row.values }));
  }

  protected async insertErrorCounts(rows: ErrorCountRow[]): Promise<void> {
    await this.#db
      .insert(errorCountMinutes)
      .values(rows)
      .onConflictDoUpdate({
        target: [errorCountMinutes.minute, errorCountMinutes.source, errorCountMinutes.fingerprint],
        set: {
          count: sql`${errorCountMinutes.count} + excluded.count`,
          level: sql`excluded.level`,
          category: sql`excluded.category`,
          sample: sql`excluded.sample`,
        },
      });
  }

  protected async selectErrorFrequencies(start: Date, end: Date): Promise<ErrorFrequency[]> {
    const result = await this.#db.execute(sql`
      select source, fingerprint,
        (array_agg(level order by minute desc))[1] as level,
        (array_agg(category order by minute desc))[1] as category,
        (array_agg(sample order by minute desc))[1] as sample,
        sum(count)::float8 as count,
        min(minute) as first_minute, max(minute) as last_minute
      from error_count_minutes
      where minute >= ${start} and minute < ${end}
      group by source, fingerprint
      order by count desc, source, fingerprint collate "C"`);
    return result.rows.map((row) => {
      const record = row as Record<string, unknown>;
      return {
        source: record.source as ErrorSource,
        fingerprint: String(record.fingerprint),
        level: record.level as ErrorLevel,
        category: String(record.category),
        sample: String(record.sample),
        count: Number(record.count),
        firstMinute: new Date(record.first_minute as Date),
        lastMinute: new Date(record.last_minute as Date),
      };
    });
  }

  protected async insertChannelCounts(rows: ChannelCountRow[]): Promise<void> {
    await this.#db
      .insert(channelCountMinutes)
      .values(rows)
      .onConflictDoUpdate({
        target: [
          channelCountMinutes.minute,
          channelCountMinutes.channel,
          channelCountMinutes.source,
        ],
        set: { count: sql`excluded.count` },
      });
  }

  protected async selectChannelTotals(start: Date, end: Date): Promise<ChannelTotal[]> {
    const rows = await this.#db
      .select({
        channel: channelCountMinutes.channel,
        count: sql<number>`sum(${channelCountMinutes.count})::float8`.mapWith(Number),
      })
      .from(channelCountMinutes)
      .where(and(gte(channelCountMinutes.minute, start), lt(channelCountMinutes.minute, end)))
      .groupBy(channelCountMinutes.channel)
      .orderBy(asc(channelCountMinutes.channel));
    return rows;
  }

  protected insertEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome> {
    return emqxCounters.writeEmqxTopicCounters(this.#db, batch);
  }

  protected selectEmqxTopicTotals(
    start: Date,
    end: Date,
    limit: number,
  ): Promise<EmqxTopicTotal[]> {
    return emqxCounters.emqxTopicTotals(this.#db, start, end, limit);
  }

  protected insertAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void> {
    return aggregationSpace.writeAggregationSpace(this.#db, snapshot);
  }

  latestAggregationSpace(): Promise<AggregationSpaceSnapshot | null> {
    return aggregationSpace.latestAggregationSpace(this.#db);
  }
}
