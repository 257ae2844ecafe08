/**
 * The time-series store interface. Both implementations (PostgreSQL, the embedded default, and
 * ClickHouse) keep the same tables, the same rollups and the same retention rules, and pass the
 * same test suite (`store-suite.ts`). The decision record
 * `docs/decisions/2026-12-04-time-series-store.md` explains the horizons and guarantees.
 */
import type {
  EmqxTopicCounterBatch,
  EmqxTopicCounterSink,
} from "../metering/emqx/topic-metrics.ts";
import type { AggregationSpaceSnapshot } from "../metering/state/aggregation-space.ts";
import type { AggregationSpaceSink } from "../metering/state/collector.ts";
import type { CounterReader } from "./load.ts";
import type {
  BatchWriteOutcome,
  Channel,
  ChannelCountRow,
  CounterBatch,
  CounterSink,
  ErrorCountRow,
  ErrorLevel,
  ErrorSource,
  NodeStateSample,
} from "./types.ts";

/**
 * Minute counter rows, the tap's and EMQX's, are kept this long, counted back from the start of
 * the current hour.
 */
export const MINUTE_RETENTION_HOURS = 48;
/**
 * Hourly rollups, node state samples, channel counts and aggregation space snapshots are kept
 * this many whole UTC days.
 */
export const LONG_RETENTION_DAYS = 400;
/** Error frequencies are kept this long, counted back from the start of the current hour. */
export const ERROR_RETENTION_HOURS = 168;
/**
 * Each rollup run recomputes this many hours before the previous run's end, so counter batches
 * that arrive up to this late still reach the hourly rollups.
 */
export const ROLLUP_LOOKBACK_HOURS = 3;

/** Averaging horizons of load figures, in the order every figure array uses. */
export const LOAD_HORIZONS = ["month", "week", "day", "hour"] as const;
export type LoadHorizon = (typeof LOAD_HORIZONS)[number];

/** Length of each horizon in seconds; a month is 30 days. */
export const HORIZON_SECONDS: Readonly<Record<LoadHorizon, number>> = {
  month: 30 * 86_400,
  week: 7 * 86_400,
  day: 86_400,
  hour: 3_600,
};

/** Four values in the order of {@link LOAD_HORIZONS}: `[month, week, day, hour]`. */
export type PerHorizon = [number, number, number, number];

/** Key kind that load figures are grouped by. Repo figures are computed from Unit figures. */
export type LoadSubject = "topic" | "unitNode" | "unit" | "repo" | "domain";

/**
 * Load of one key (a topic, a UnitNode, Unit or Repo id, or a domain). `messages` and `bytes`
 * are totals in each window; `mps` is messages per second over the whole window length, as
 * {@link LoadReport.windowSeconds} gives it.
 *
 * For a Repo, `mps` is the mean of the per-Unit MPS over the Repo's Units that sent at least one
 * message in that window, and `activeUnits` counts those Units. A Repo without active Units in a
 * window has `mps` 0 there.
 */
export interface LoadFigure {
  key: string;
  messages: PerHorizon;
  bytes: PerHorizon;
  mps: PerHorizon;
  /** Only for `repo` figures. */
  activeUnits?: PerHorizon;
}

export interface LoadReport {
  subject: LoadSubject;
  /** End of every window: the start of the minute that contains `now`. */
  windowEnd: Date;
  /** Window lengths in seconds, `[month, week, day, hour]`. */
  windowSeconds: PerHorizon;
  /** Figures of every key with traffic in the month window, ordered by key. */
  figures: LoadFigure[];
}

export type HotSubject = "topic" | "unit";
export type HotWindow = "minute" | "hour";

export interface HotEntry {
  key: string;
  messages: number;
  mps: number;
}

export interface RollUpResult {
  /** Hours recomputed from minute rows, `[from, to)`; equal when nothing was due. */
  from: Date;
  to: Date;
  /** Hourly rows written. */
  rows: number;
}

/** Cutoffs that `applyRetention` applied: rows strictly before each were removed. */
export interface RetentionResult {
  minutesBefore: Date | null;
  hoursBefore: Date;
  errorsBefore: Date;
  /**
   * EMQX topic counts and their batch ledger. They have no rollup, so unlike `minutesBefore`
   * this cutoff does not wait for the rollup job.
   */
  emqxMinutesBefore: Date;
  /** Node state samples, channel counts and aggregation space snapshots. */
  longBefore: Date;
}

export interface ErrorFrequency {
  source: ErrorSource;
  fingerprint: string;
  level: ErrorLevel;
  category: string;
  /** The sample of the latest minute in the window. */
  sample: string;
  count: number;
  firstMinute: Date;
  lastMinute: Date;
}

export interface ChannelTotal {
  channel: Channel;
  count: number;
}

/** Sums of EMQX's topic counts of one topic over a time range, added up over sources. */
export interface EmqxTopicTotal {
  topic: string;
  /** Messages published to the topic (`messages.in.count`). */
  messagesIn: number;
  /** Deliveries to subscribers (`messages.out.count`). */
  messagesOut: number;
  messagesDropped: number;
}

/**
 * The store of metering figures. Its {@link CounterReader} methods sum counter rows over any
 * windows, which grading uses for its five-minute samples.
 */
export interface TimeSeriesStore
  extends CounterSink,
    EmqxTopicCounterSink,
    AggregationSpaceSink,
    CounterReader {
  /** Creates or upgrades the store's tables. Safe to call on every start. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /**
   * Adds a tap's counter batch to the minute rows, once per `batchId`: a batch whose first write
   * landed returns `"duplicate"` and changes nothing. A batch without rows returns `"written"`
   * and is not recorded. Throws `TimeSeriesInputError` on invalid rows, before writing anything.
   */
  writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome>;

  /**
   * Recomputes the hourly rollups of complete hours from minute rows, replacing earlier results,
   * so running it again with the same `now` gives the same rows. It covers every hour since the
   * previous run's end minus {@link ROLLUP_LOOKBACK_HOURS}, and all kept minutes on the first run.
   */
  rollUp(now: Date): Promise<RollUpResult>;

  /**
   * Removes rows past their horizon. The tap's minute rows are removed only once they are rolled
   * up, so a node whose rollup job has not run keeps them. EMQX's minute rows have no rollup and
   * go after 48 hours.
   */
  applyRetention(now: Date): Promise<RetentionResult>;

  /** Load figures over the last hour, day, week and month before `now`. */
  loadReport(subject: LoadSubject, now: Date): Promise<LoadReport>;

  /** The `limit` keys with the highest MPS over the last complete minute or the last hour. */
  hotList(subject: HotSubject, window: HotWindow, now: Date, limit: number): Promise<HotEntry[]>;

  /** Stores a sample under its UTC minute; a later sample of the same minute replaces it. */
  writeNodeState(sample: NodeStateSample): Promise<void>;
  /** The sample of the latest minute, with `at` set to that minute, or null when none is kept. */
  latestNodeState(): Promise<NodeStateSample | null>;
  /** Samples with minutes in `[from, to)`, oldest first. */
  nodeStateHistory(from: Date, to: Date): Promise<NodeStateSample[]>;

  /** Adds counts per (minute, source, fingerprint); level, category and sample take the latest. */
  writeErrorCounts(rows: ErrorCountRow[]): Promise<void>;
  /** Totals per (source, fingerprint) over minutes in `[from, to)`, highest count first. */
  errorFrequencies(from: Date, to: Date): Promise<ErrorFrequency[]>;

  /** Stores channel counts; a row with the same minute, channel and source replaces the earlier. */
  writeChannelCounts(rows: ChannelCountRow[]): Promise<void>;
  /** Totals per channel, summed over sources, over minutes in `[from, to)`, by channel name. */
  channelTotals(from: Date, to: Date): Promise<ChannelTotal[]>;

  /**
   * Adds EMQX's topic counts to their own minute rows, once per `batchId`, like
   * {@link writeCounterBatch}. These rows never reach load figures, hot lists or rollups,
   * because they measure the same messages as the tap. Throws `TimeSeriesInputError` on invalid
   * rows, including a row with `bytes` other than 0, before writing anything.
   */
  writeEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome>;
  /**
   * Sums EMQX's topic counts per topic over minutes in `[from, to)` and returns the `limit`
   * topics with the most messages in, then by topic.
   */
  emqxTopicTotals(from: Date, to: Date, limit: number): Promise<EmqxTopicTotal[]>;

  /**
   * Stores a snapshot under its UTC minute. A later snapshot of the same minute replaces it
   * whole, including the UnitNodes and users that the later one no longer lists.
   */
  writeAggregationSpace(snapshot: AggregationSpaceSnapshot): Promise<void>;
  /**
   * The snapshot of the latest minute, with `at` set to that minute and its lists in the order
   * they were written, or null when none is kept.
   */
  latestAggregationSpace(): Promise<AggregationSpaceSnapshot | null>;
}
