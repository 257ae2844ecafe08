/**
 * Input checks shared by both stores. Every value that reaches SQL passes through here first,
 * and ClickHouse statements inline only values these checks accept (see `clickhouse/sql.ts`).
 */

import type { EmqxTopicCounterBatch, EmqxTopicCounterRow } from "../metering/emqx/topic-metrics.ts";
import {
  type AggregationSpaceSnapshot,
  DATAPIPE_TABLES,
  type DataPipeTable,
  type UnitNodeSpace,
  type UserSpace,
} from "../metering/state/aggregation-space.ts";
import { compareKeys } from "./time.ts";
import type {
  ChannelCountRow,
  CounterBatch,
  ErrorCountRow,
  NodeStateSample,
  TopicCounterRow,
} from "./types.ts";

/** Raised for input the store rejects; `field` names the offending field and nothing is written. */
export class TimeSeriesInputError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`Invalid ${field}: ${message}`);
    this.name = "TimeSeriesInputError";
    this.field = field;
  }
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// ClickHouse `DateTime` covers 1970 to 2105; the store accepts a narrower, sane range.
const EARLIEST_MS = Date.UTC(2000, 0, 1);
const LATEST_MS = Date.UTC(2100, 0, 1);
/** MQTT topic names are at most 65,535 bytes of UTF-8. */
const MAX_TOPIC_BYTES = 65_535;
const MAX_LABEL_LENGTH = 1_000;
const MAX_SAMPLE_LENGTH = 2_000;

export const CHANNELS = ["mqtt", "graphql", "rest", "telegram", "other"] as const;
export const ERROR_SOURCES = ["node", "backend"] as const;
export const ERROR_LEVELS = ["error", "critical"] as const;
export const DOMAIN_KINDS = ["local", "foreign"] as const;

/** Returns `time` when it is a valid date in 2000..2099; with `unit`, it must start a UTC unit. */
export function checkTime(field: string, time: unknown, unit?: "minute"): Date {
  if (!(time instanceof Date) || Number.isNaN(time.getTime())) {
    throw new TimeSeriesInputError(field, "expected a valid Date");
  }
  const ms = time.getTime();
  if (ms < EARLIEST_MS || ms >= LATEST_MS) {
    throw new TimeSeriesInputError(field, `${time.toISOString()} is outside 2000-2099`);
  }
  if (unit === "minute" && ms % 60_000 !== 0) {
    throw new TimeSeriesInputError(
      field,
      `${time.toISOString()} is not the start of a UTC minute (seconds and milliseconds must be 0)`,
    );
  }
  return time;
}

/** Returns `value` when it is a non-negative safe integer. */
export function checkCount(field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TimeSeriesInputError(field, `expected a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a non-empty, well-formed Unicode string of at most `maxLength`
 * characters without U+0000, which PostgreSQL `text` cannot contain.
 */
export function checkText(
  field: string,
  value: unknown,
  maxLength = MAX_LABEL_LENGTH,
  allowEmpty = false,
): string {
  if (typeof value !== "string" || (value.length === 0 && !allowEmpty)) {
    throw new TimeSeriesInputError(field, "expected a non-empty string");
  }
  if (value.length > maxLength) {
    throw new TimeSeriesInputError(field, `longer than ${maxLength} characters`);
  }
  if (!value.isWellFormed()) {
    throw new TimeSeriesInputError(field, "contains an unpaired UTF-16 surrogate");
  }
  if (value.includes("\u0000")) {
    throw new TimeSeriesInputError(field, "contains the character U+0000");
  }
  return value;
}

export function checkUuid(field: string, value: unknown): string {
  if (typeof value !== "string" || !UUID_PATTERN.test(value)) {
    throw new TimeSeriesInputError(field, `expected a lower-case UUID, got ${String(value)}`);
  }
  return value;
}

function checkOptionalUuid(field: string, value: unknown): string | null {
  return value === null ? null : checkUuid(field, value);
}

function checkMember<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new TimeSeriesInputError(field, `expected one of ${allowed.join(", ")}`);
  }
  return value as T;
}

/** Returns `[from, to)` when both are valid and `from` is not after `to`. */
export function checkRange(from: unknown, to: unknown): [Date, Date] {
  const start = checkTime("from", from);
  const end = checkTime("to", to);
  if (start.getTime() > end.getTime()) {
    throw new TimeSeriesInputError("from", "must not be after `to`");
  }
  return [start, end];
}

function checkCounterRow(row: TopicCounterRow, index: number): TopicCounterRow {
  const at = `rows[${index}]`;
  const topic = checkText(`${at}.topic`, row.topic, MAX_TOPIC_BYTES);
  if (Buffer.byteLength(topic, "utf8") > MAX_TOPIC_BYTES) {
    throw new TimeSeriesInputError(`${at}.topic`, `longer than ${MAX_TOPIC_BYTES} bytes`);
  }
  return {
    minute: checkTime(`${at}.minute`, row.minute, "minute"),
    topic,
    // The tap counts topics whose first level is not a valid domain under the domain "".
    domain: checkText(`${at}.domain`, row.domain, MAX_LABEL_LENGTH, true),
    domainKind: checkMember(`${at}.domainKind`, row.domainKind, DOMAIN_KINDS),
    unitNodeId: checkOptionalUuid(`${at}.unitNodeId`, row.unitNodeId),
    unitId: checkOptionalUuid(`${at}.unitId`, row.unitId),
    repoId: checkOptionalUuid(`${at}.repoId`, row.repoId),
    messages: checkCount(`${at}.messages`, row.messages),
    bytes: checkCount(`${at}.bytes`, row.bytes),
  };
}

/**
 * Merges rows of the same minute and topic with `add`, so the result contains at most one row per
 * key, ordered by minute and topic. Rows of one key that differ in domain or attribution ids are
 * rejected, because either value could be wrong.
 */
function mergeByMinuteAndTopic<T extends TopicCounterRow>(
  rows: T[],
  add: (earlier: T, row: T, index: number) => void,
): T[] {
  const merged = new Map<string, T>();
  rows.forEach((row, index) => {
    const key = `${row.minute.getTime()}\u0000${row.topic}`;
    const earlier = merged.get(key);
    if (!earlier) {
      merged.set(key, row);
      return;
    }
    const sameAttribution =
      earlier.domain === row.domain &&
      earlier.domainKind === row.domainKind &&
      earlier.unitNodeId === row.unitNodeId &&
      earlier.unitId === row.unitId &&
      earlier.repoId === row.repoId;
    if (!sameAttribution) {
      throw new TimeSeriesInputError(
        `rows[${index}]`,
        `topic ${JSON.stringify(row.topic)} at ${row.minute.toISOString()} appears twice with different domain or ids`,
      );
    }
    add(earlier, row, index);
  });
  return [...merged.values()].sort(
    (a, b) => a.minute.getTime() - b.minute.getTime() || compareKeys(a.topic, b.topic),
  );
}

/**
 * Validates a counter batch and merges rows of the same minute and topic by adding their
 * counts, so each batch contains at most one row per key. Rows of one key must agree on domain and
 * attribution ids; a batch where they differ is rejected, because either value could be wrong.
 * Returns the rows ordered by minute and topic, which keeps lock order stable on PostgreSQL.
 */
export function normalizeCounterBatch(batch: CounterBatch): CounterBatch {
  const batchId = checkText("batchId", batch.batchId, 200);
  const tapId = checkText("tapId", batch.tapId, 200);
  if (!Array.isArray(batch.rows)) throw new TimeSeriesInputError("rows", "expected an array");

  const checked = batch.rows.map((row, index) => checkCounterRow(row, index));
  const rows = mergeByMinuteAndTopic(checked, (earlier, row, index) => {
    earlier.messages = checkCount(`rows[${index}].messages`, earlier.messages + row.messages);
    earlier.bytes = checkCount(`rows[${index}].bytes`, earlier.bytes + row.bytes);
  });
  return { batchId, tapId, rows };
}

function checkEmqxCounterRow(row: EmqxTopicCounterRow, index: number): EmqxTopicCounterRow {
  const checked = checkCounterRow(row, index);
  // EMQX's topic metrics count no bytes, so a byte count means the row came from elsewhere.
  if (checked.bytes !== 0) {
    throw new TimeSeriesInputError(
      `rows[${index}].bytes`,
      `expected 0 because EMQX topic metrics count no bytes, got ${checked.bytes}`,
    );
  }
  return {
    ...checked,
    messagesOut: checkCount(`rows[${index}].messagesOut`, row.messagesOut),
    messagesDropped: checkCount(`rows[${index}].messagesDropped`, row.messagesDropped),
  };
}

/**
 * Validates a batch of EMQX topic counts and merges rows of the same minute and topic as
 * {@link normalizeCounterBatch} does, adding messages in, out and dropped.
 */
export function normalizeEmqxTopicCounterBatch(
  batch: EmqxTopicCounterBatch,
): EmqxTopicCounterBatch {
  const batchId = checkText("batchId", batch.batchId, 200);
  const source = checkText("source", batch.source, 200);
  if (!Array.isArray(batch.rows)) throw new TimeSeriesInputError("rows", "expected an array");

  const checked = batch.rows.map((row, index) => checkEmqxCounterRow(row, index));
  const rows = mergeByMinuteAndTopic(checked, (earlier, row, index) => {
    const at = `rows[${index}]`;
    earlier.messages = checkCount(`${at}.messages`, earlier.messages + row.messages);
    earlier.messagesOut = checkCount(`${at}.messagesOut`, earlier.messagesOut + row.messagesOut);
    earlier.messagesDropped = checkCount(
      `${at}.messagesDropped`,
      earlier.messagesDropped + row.messagesDropped,
    );
  });
  return { batchId, source, rows };
}

export function checkNodeStateSample(sample: NodeStateSample): NodeStateSample {
  const at = checkTime("at", sample.at);
  if (typeof sample.values !== "object" || sample.values === null) {
    throw new TimeSeriesInputError("values", "expected an object of metric name to number");
  }
  const values: Record<string, number> = {};
  for (const [name, value] of Object.entries(sample.values)) {
    checkText("values name", name, 200);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new TimeSeriesInputError(`values.${name}`, `expected a finite number, got ${value}`);
    }
    values[name] = value;
  }
  return { at, values };
}

export function checkErrorCountRow(row: ErrorCountRow, index: number): ErrorCountRow {
  const at = `rows[${index}]`;
  return {
    minute: checkTime(`${at}.minute`, row.minute, "minute"),
    source: checkMember(`${at}.source`, row.source, ERROR_SOURCES),
    fingerprint: checkText(`${at}.fingerprint`, row.fingerprint, 200),
    level: checkMember(`${at}.level`, row.level, ERROR_LEVELS),
    category: checkText(`${at}.category`, row.category),
    sample: checkText(`${at}.sample`, row.sample, MAX_SAMPLE_LENGTH),
    count: checkCount(`${at}.count`, row.count),
  };
}

export function checkChannelCountRow(row: ChannelCountRow, index: number): ChannelCountRow {
  const at = `rows[${index}]`;
  return {
    minute: checkTime(`${at}.minute`, row.minute, "minute"),
    channel: checkMember(`${at}.channel`, row.channel, CHANNELS),
    source: checkText(`${at}.source`, row.source, 200),
    count: checkCount(`${at}.count`, row.count),
  };
}

/** Returns `limit` when it is an integer from 1 to 10,000. */
export function checkLimit(limit: unknown): number {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new TimeSeriesInputError("limit", `expected an integer from 1 to 10000, got ${limit}`);
  }
  return limit;
}

/** Validates error rows and adds up rows of the same minute, source and fingerprint. */
export function normalizeErrorCounts(rows: ErrorCountRow[]): ErrorCountRow[] {
  if (!Array.isArray(rows)) throw new TimeSeriesInputError("rows", "expected an array");
  const merged = new Map<string, ErrorCountRow>();
  rows.forEach((input, index) => {
    const row = checkErrorCountRow(input, index);
    const key = `${row.minute.getTime()}\u0000${row.source}\u0000${row.fingerprint}`;
    const earlier = merged.get(key);
    // The later row's level, category and sample win, as they do across separate writes.
    if (earlier) row.count = checkCount(`rows[${index}].count`, earlier.count + row.count);
    merged.set(key, row);
  });
  return [...merged.values()];
}

/** Validates channel rows; of rows with the same minute, channel and source the last one wins. */
export function normalizeChannelCounts(rows: ChannelCountRow[]): ChannelCountRow[] {
  if (!Array.isArray(rows)) throw new TimeSeriesInputError("rows", "expected an array");
  const latest = new Map<string, ChannelCountRow>();
  rows.forEach((input, index) => {
    const row = checkChannelCountRow(input, index);
    latest.set(`${row.minute.getTime()}\u0000${row.channel}\u0000${row.source}`, row);
  });
  return [...latest.values()];
}

function checkUnitNodeSpace(entry: UnitNodeSpace, index: number): UnitNodeSpace {
  const at = `unitNodes[${index}]`;
  return {
    unitNodeId: checkUuid(`${at}.unitNodeId`, entry.unitNodeId),
    userId: checkOptionalUuid(`${at}.userId`, entry.userId),
    table: checkMember(`${at}.table`, entry.table, DATAPIPE_TABLES),
    rows: checkCount(`${at}.rows`, entry.rows),
    bytes: checkCount(`${at}.bytes`, entry.bytes),
  };
}

function checkUserSpace(entry: UserSpace, index: number): UserSpace {
  const at = `users[${index}]`;
  return {
    userId: checkOptionalUuid(`${at}.userId`, entry.userId),
    rows: checkCount(`${at}.rows`, entry.rows),
    bytes: checkCount(`${at}.bytes`, entry.bytes),
  };
}

/**
 * Validates an aggregation space snapshot and returns a copy. A UnitNode and table pair, a user
 * (`null` included) or a missing table may appear only once, because a second entry would make
 * the snapshot ambiguous.
 */
export function checkAggregationSpaceSnapshot(
  snapshot: AggregationSpaceSnapshot,
): AggregationSpaceSnapshot {
  const at = checkTime("at", snapshot.at);
  for (const field of ["unitNodes", "users", "missingTables"] as const) {
    if (!Array.isArray(snapshot[field])) {
      throw new TimeSeriesInputError(field, "expected an array");
    }
  }

  const unitNodes = snapshot.unitNodes.map((entry, index) => checkUnitNodeSpace(entry, index));
  const nodeKeys = new Set<string>();
  unitNodes.forEach((entry, index) => {
    const key = `${entry.unitNodeId}\u0000${entry.table}`;
    if (nodeKeys.has(key)) {
      throw new TimeSeriesInputError(
        `unitNodes[${index}]`,
        `UnitNode ${entry.unitNodeId} appears twice for table ${entry.table}`,
      );
    }
    nodeKeys.add(key);
  });

  const users = snapshot.users.map((entry, index) => checkUserSpace(entry, index));
  const userKeys = new Set<string | null>();
  users.forEach((entry, index) => {
    if (userKeys.has(entry.userId)) {
      throw new TimeSeriesInputError(`users[${index}]`, `user ${entry.userId} appears twice`);
    }
    userKeys.add(entry.userId);
  });

  const missingTables: DataPipeTable[] = [];
  snapshot.missingTables.forEach((table, index) => {
    const checked = checkMember(`missingTables[${index}]`, table, DATAPIPE_TABLES);
    if (missingTables.includes(checked)) {
      throw new TimeSeriesInputError(`missingTables[${index}]`, `${checked} appears twice`);
    }
    missingTables.push(checked);
  });

  return { at, unitNodes, users, missingTables };
}
