/**
 * The part of a time-series store that does not depend on the backend: input checks, the
 * logging of batch writes, rollups and retention, and load figures computed from counter sums.
 * Each backend extends {@link BaseTimeSeriesStore} and supplies only its queries, which receive
 * checked and normalized input.
 */
import type { Logger } from "@logtape/logtape";
import type { EmqxTopicCounterBatch } from "../metering/emqx/topic-metrics.ts";
import type { AggregationSpaceSnapshot } from "../metering/state/aggregation-space.ts";
import {
  type CounterGroup,
  type CounterReader,
  type CounterSum,
  type CounterSumOptions,
  computeHotList,
  computeLoadReport,
  type WindowPlan,
} from "./load.ts";
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
} from "./store.ts";
import type {
  BatchWriteOutcome,
  ChannelCountRow,
  CounterBatch,
  ErrorCountRow,
  NodeStateSample,
} from "./types.ts";
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
} from "./validation.ts";

/** Outcome of a backend's retention step. */
export interface RetentionRun {
  cutoffs: RetentionResult;
  /** Dropped partition names per table, for backends that remove rows by partition. */
  droppedPartitions?: Record<string, string[]>;
}

export abstract class BaseTimeSeriesStore implements TimeSeriesStore, CounterReader {
  readonly #logger: Logger;

  /** `logger` is the backend's own category, so log lines show which store wrote them. */
  protected constructor(logger: Logger) {
    this.#logger = logger;
  }

  abstract migrate(): Promise<void>;
  abstract close(): Promise<void>;
  abstract readRollupWatermark(): Promise<Date | null>;
  abstract sumCounters(
    group: CounterGroup,
    plans: WindowPlan[],
    options?: CounterSumOptions,
  ): Promise<CounterSum[]>;
  abstract latestNodeState(): Promise<NodeStateSample | null>;
  abstract latestAggregationSpace(): Promise<AggregationSpaceSnapshot | null>;

  /** Writes a normalized batch with at least one row, once per `batchId`. */
  protected abstract insertCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome>;
  protected abstract rollUpHours(now: Date): Promise<RollUpResult>;
  protected abstract removeExpiredRows(now: Date): Promise<RetentionRun>;
  protected abstract insertNodeState(sample: NodeStateSample): Promise<void>;
  protected abstract selectNodeStates(start: Date, end: Date): Promise<NodeStateSample[]>;
  /** Writes merged rows. The base class never passes an empty list. */
  protected abstract insertErrorCounts(rows: ErrorCountRow[]): Promise<void>;
  protected abstract selectErrorFrequencies(start: Date, end: Date): Promise<ErrorFrequency[]>;
  /** Writes rows with one row per key. The base class never passes an empty list. */
  protected abstract insertChannelCounts(rows: ChannelCountRow[]): Promise<void>;
  protected abstract selectChannelTotals(start: Date, end: Date): Promise<ChannelTotal[]>;
  /** Writes a normalized batch with at least one row, once per `batchId`. */
  protected abstract insertEmqxTopicCounters(
    batch: EmqxTopicCounterBatch,
  ): Promise<BatchWriteOutcome>;
  protected abstract selectEmqxTopicTotals(
    start: Date,
    end: Date,
    limit: number,
  ): Promise<EmqxTopicTotal[]>;
  protected abstract insertAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void>;

  async writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome> {
    const normalized = normalizeCounterBatch(batch);
    if (normalized.rows.length === 0) return "written";
    const outcome = await this.insertCounterBatch(normalized);
    if (outcome === "duplicate") {
      this.#logger.info("Skipped counter batch {batchId} of tap {tapId}: already written", {
        batchId: normalized.batchId,
        tapId: normalized.tapId,
      });
    }
    return outcome;
  }

  async rollUp(now: Date): Promise<RollUpResult> {
    checkTime("now", now);
    this.#logger.info("Rolling up topic counters at {now}", { now: now.toISOString() });
    try {
      const result = await this.rollUpHours(now);
      this.#logger.info("Rolled up hours {from} to {to} into {rows} rows", {
        from: result.from.toISOString(),
        to: result.to.toISOString(),
        rows: result.rows,
      });
      return result;
    } catch (error) {
      this.#logger.error("Rollup of topic counters failed: {error}", { error });
      throw error;
    }
  }

  async applyRetention(now: Date): Promise<RetentionResult> {
    checkTime("now", now);
    this.#logger.info("Applying time-series retention at {now}", { now: now.toISOString() });
    try {
      const { cutoffs, droppedPartitions } = await this.removeExpiredRows(now);
      if (droppedPartitions === undefined) {
        this.#logger.info("Applied time-series retention at {now}", { now: now.toISOString() });
      } else {
        this.#logger.info("Applied time-series retention at {now}; dropped partitions {dropped}", {
          now: now.toISOString(),
          dropped: droppedPartitions,
        });
      }
      return cutoffs;
    } catch (error) {
      this.#logger.error("Time-series retention failed: {error}", { error });
      throw error;
    }
  }

  loadReport(subject: LoadSubject, now: Date): Promise<LoadReport> {
    return computeLoadReport(this, subject, now);
  }

  hotList(subject: HotSubject, window: HotWindow, now: Date, limit: number): Promise<HotEntry[]> {
    return computeHotList(this, subject, window, now, limit);
  }

  async writeNodeState(sample: NodeStateSample): Promise<void> {
    await this.insertNodeState(checkNodeStateSample(sample));
  }

  async nodeStateHistory(from: Date, to: Date): Promise<NodeStateSample[]> {
    const [start, end] = checkRange(from, to);
    return await this.selectNodeStates(start, end);
  }

  async writeErrorCounts(rows: ErrorCountRow[]): Promise<void> {
    const merged = normalizeErrorCounts(rows);
    if (merged.length === 0) return;
    await this.insertErrorCounts(merged);
  }

  async errorFrequencies(from: Date, to: Date): Promise<ErrorFrequency[]> {
    const [start, end] = checkRange(from, to);
    return await this.selectErrorFrequencies(start, end);
  }

  async writeChannelCounts(rows: ChannelCountRow[]): Promise<void> {
    const latest = normalizeChannelCounts(rows);
    if (latest.length === 0) return;
    await this.insertChannelCounts(latest);
  }

  async channelTotals(from: Date, to: Date): Promise<ChannelTotal[]> {
    const [start, end] = checkRange(from, to);
    return await this.selectChannelTotals(start, end);
  }

  async writeEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome> {
    const normalized = normalizeEmqxTopicCounterBatch(batch);
    if (normalized.rows.length === 0) return "written";
    const outcome = await this.insertEmqxTopicCounters(normalized);
    if (outcome === "duplicate") {
      this.#logger.info("Skipped EMQX counter batch {batchId} of {source}: already written", {
        batchId: normalized.batchId,
        source: normalized.source,
      });
    }
    return outcome;
  }

  async emqxTopicTotals(from: Date, to: Date, limit: number): Promise<EmqxTopicTotal[]> {
    const [start, end] = checkRange(from, to);
    return await this.selectEmqxTopicTotals(start, end, checkLimit(limit));
  }

  async writeAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void> {
    await this.insertAggregationSpace(checkAggregationSpaceSnapshot(snapshot));
  }
}
