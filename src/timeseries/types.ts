/**
 * Shared types of the time-series store. The store keeps what metering measures; it has a
 * PostgreSQL implementation (the embedded default) and a ClickHouse implementation, which pass
 * the same test suite.
 */

/** Origin of a message relative to this instance. */
export type DomainKind = "local" | "foreign";

/**
 * Messages and bytes one tap counted on one MQTT topic within one UTC minute. Attribution ids
 * are null when the topic names no known UnitNode or Unit.
 */
export interface TopicCounterRow {
  /** Start of the UTC minute, with seconds and milliseconds zero. */
  minute: Date;
  topic: string;
  /** First topic level: the Pepeunit instance domain the topic belongs to. */
  domain: string;
  domainKind: DomainKind;
  unitNodeId: string | null;
  unitId: string | null;
  repoId: string | null;
  messages: number;
  bytes: number;
}

/**
 * One flush of a tap. `batchId` is unique per tap and flush, and writing the same batch twice (a
 * retry after a timeout whose first attempt did land) must count it once.
 */
export interface CounterBatch {
  batchId: string;
  /** Identifier of the tap process that counted the batch. */
  tapId: string;
  rows: TopicCounterRow[];
}

export type BatchWriteOutcome = "written" | "duplicate";

/** The part of the store that the MQTT tap writes to. */
export interface CounterSink {
  writeCounterBatch(batch: CounterBatch): Promise<BatchWriteOutcome>;
}

/**
 * One reading of the node's dynamic state: metric name → value, in the units the name states
 * (for example `cpu_percent`, `memory_used_bytes`, `disk_free_bytes`). The set of names is
 * defined by the node-state collector; the store keeps whatever names it is given.
 */
export interface NodeStateSample {
  at: Date;
  values: Record<string, number>;
}

export type ErrorSource = "node" | "backend";
export type ErrorLevel = "error" | "critical";

/**
 * How often one kind of error record (its fingerprint) occurred within one UTC minute. Only
 * frequencies are kept, never the records themselves; `sample` is one short example message.
 */
export interface ErrorCountRow {
  minute: Date;
  source: ErrorSource;
  fingerprint: string;
  level: ErrorLevel;
  /** Logger category or backend module the records came from. */
  category: string;
  sample: string;
  count: number;
}

export type Channel = "mqtt" | "graphql" | "rest" | "telegram" | "other";

/**
 * Requests or messages that reached the Pepeunit backend through one channel within one UTC
 * minute, as measured by `source` (for example `tap`, `backend-prometheus`, `ingest`). A row
 * with the same minute, channel and source replaces the earlier one, so re-reading a counter
 * never counts it twice.
 */
export interface ChannelCountRow {
  minute: Date;
  channel: Channel;
  source: string;
  count: number;
}
