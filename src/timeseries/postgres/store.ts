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

const logger = getNodeLogger("timeseries", "postgres");

export class PostgresTimeSeriesStore implements TimeSeriesStore, CounterReader {
  readonly #db: Database;

  /** `db` belongs to the caller, who also closes its pool. */
  constructor(db: Database) {
    this.#db = db;
  }

  /** Does nothing: the tables come with the node's PostgreSQL migrations. */
  async migrate(): Promise<void> {}

  /** Does nothing: the pool belongs to the caller. */
  async close(): Promise<void> {}

  async writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
    const normalized = normalizeCounterBatch(batch);
    if (normalized.rows.length === 0) return "written";
    const outcome = await counters.writeCounterBatch(this.#db, normalized);
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
      const result = await counters.rollUp(this.#db, now);
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
      const cutoffs = await this.#db.transaction(async (tx) => {
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
        await tx
          .delete(errorCountMinutes)
          .where(lt(errorCountMinutes.minute, cutoffs.errorsBefore));
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
        return cutoffs;
      });
      logger.info("Applied time-series retention at {now}", { now: now.toISOString() });
      return cutoffs;
    } catch (error) {
      logger.error("Time-series retention failed: {error}", { error });
      throw error;
    }
  }

  readRollupWatermark(): Promise<Date | null> {
    return counters.readRollupWatermark(this.#db);
  }

  sumCounters(group: CounterGroup, plans: WindowPlan[], options?: CounterSumOptions) {
    return counters.sumCounters(this.#db, group, plans, options);
  }

  loadReport(subject: LoadSubject, now: Date): Promise<LoadReport> {
    return computeLoadReport(this, subject, now);
  }

  hotList(subject: HotSubject, window: HotWindow, now: Date, limit: number): Promise<HotEntry[]> {
    return computeHotList(this, subject, window, now, limit);
  }

  async writeNodeState(sample: NodeStateSample): Promise<void> {
    const checked = checkNodeStateSample(sample);
    const minute = floorMinute(checked.at);
    await this.#db
      .insert(nodeStateMinutes)
      .values({ minute, values: checked.values })
      .onConflictDoUpdate({ target: nodeStateMinutes.minute, set: { values: checked.values } });
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

  async nodeStateHistory(from: Date, to: Date): Promise<NodeStateSample[]> {
    const [start, end] = checkRange(from, to);
    const rows = await this.#db
      .select()
      .from(nodeStateMinutes)
      .where(and(gte(nodeStateMinutes.minute, start), lt(nodeStateMinutes.minute, end)))
      .orderBy(asc(nodeStateMinutes.minute));
    return rows.map((row) => ({ at: row.minute, values: row.values }));
  }

  async writeErrorCounts(rows: ErrorCountRow[]): Promise<void> {
    const merged = normalizeErrorCounts(rows);
    if (merged.length === 0) return;
    await this.#db
      .insert(errorCountMinutes)
      .values(merged)
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

  async errorFrequencies(from: Date, to: Date): Promise<ErrorFrequency[]> {
    const [start, end] = checkRange(from, to);
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

  async writeChannelCounts(rows: ChannelCountRow[]): Promise<void> {
    const latest = normalizeChannelCounts(rows);
    if (latest.length === 0) return;
    await this.#db
      .insert(channelCountMinutes)
      .values(latest)
      .onConflictDoUpdate({
        target: [
          channelCountMinutes.minute,
          channelCountMinutes.channel,
          channelCountMinutes.source,
        ],
        set: { count: sql`excluded.count` },
      });
  }

  async channelTotals(from: Date, to: Date): Promise<ChannelTotal[]> {
    const [start, end] = checkRange(from, to);
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

  async writeEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome> {
    const normalized = normalizeEmqxTopicCounterBatch(batch);
    if (normalized.rows.length === 0) return "written";
    const outcome = await emqxCounters.writeEmqxTopicCounters(this.#db, normalized);
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
    return emqxCounters.emqxTopicTotals(this.#db, start, end, checkLimit(limit));
  }

  async writeAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void> {
    await aggregationSpace.writeAggregationSpace(this.#db, checkAggregationSpaceSnapshot(snapshot));
  }

  latestAggregationSpace(): Promise<AggregationSpaceSnapshot | null> {
    return aggregationSpace.latestAggregationSpace(this.#db);
  }
}
