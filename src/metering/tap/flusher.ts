/**
 * Hands the tap's counters to the {@link CounterSink}, one {@link CounterBatch} per flush.
 *
 * Delivery is at least once with an idempotent batch id, which makes it exactly once. A batch
 * whose write fails is kept as it is and written again with the same `batchId` until the sink
 * accepts it. Only then is the next batch built. Rebuilding a failed batch under a new id
 * instead would count it twice whenever the failed write had in fact landed (a timeout after the
 * commit).
 */
import { randomBytes } from "node:crypto";
import { getNodeLogger } from "../../logging.ts";
import type { CounterBatch, CounterSink, TopicCounterRow } from "../../timeseries/types.ts";
import { TimeSeriesInputError } from "../../timeseries/validation.ts";
import { classifyTopic } from "../topics.ts";
import type { Attribution, AttributionCache } from "./attribution.ts";
import { type CountSnapshot, type TopicCounters, totalCounts } from "./counters.ts";

const logger = getNodeLogger("metering", "tap", "flush");

export interface FlusherStats {
  batchesWritten: number;
  duplicateBatches: number;
  failedWrites: number;
  /** Messages and bytes in batches that the sink accepted. */
  messagesWritten: number;
  bytesWritten: number;
  /** Messages in the batch that waits for a retry, if any. */
  pendingMessages: number;
  /** Messages in batches the store rejected as invalid input; each rejection is logged. */
  rejectedMessages: number;
}

export interface FlusherOptions {
  tapId: string;
  localDomain: string;
  counters: TopicCounters;
  sink: CounterSink;
  attribution: AttributionCache;
}

export class Flusher {
  readonly #options: FlusherOptions;
  // Random per process, so two runs with the same tap id never reuse a batch id.
  readonly #runId = randomBytes(6).toString("hex");
  #sequence = 0;
  #pending: { batch: CounterBatch; messages: number; bytes: number } | undefined;
  #stats: FlusherStats = {
    batchesWritten: 0,
    duplicateBatches: 0,
    failedWrites: 0,
    messagesWritten: 0,
    bytesWritten: 0,
    pendingMessages: 0,
    rejectedMessages: 0,
  };

  constructor(options: FlusherOptions) {
    this.#options = options;
  }

  get stats(): FlusherStats {
    return { ...this.#stats, pendingMessages: this.#pending?.messages ?? 0 };
  }

  /**
   * Writes the pending batch, or builds one from the counters and writes it. Returns true when
   * nothing from before this call is left to write. Returns false after a failure, which it logs,
   * and keeps the counts in memory.
   */
  async flush(): Promise<boolean> {
    if (!this.#pending) {
      const snapshot = this.#options.counters.take();
      if (snapshot.size === 0) return true;
      try {
        this.#pending = await this.#buildBatch(snapshot);
      } catch (error) {
        // Nothing reached the sink yet, so the counts can go back into the live counters.
        this.#options.counters.restore(snapshot);
        this.#stats.failedWrites += 1;
        logger.error(
          "Attribution lookup failed; keeping {messages} messages for the next flush: {error}",
          {
            ...totalCounts(snapshot),
            error,
          },
        );
        return false;
      }
    }

    const pending = this.#pending;
    try {
      const outcome = await this.#options.sink.writeCounterBatch(pending.batch);
      this.#pending = undefined;
      this.#stats.batchesWritten += 1;
      if (outcome === "duplicate") this.#stats.duplicateBatches += 1;
      this.#stats.messagesWritten += pending.messages;
      this.#stats.bytesWritten += pending.bytes;
      logger.debug("Wrote batch {batchId}: {rows} rows, {messages} messages ({outcome})", {
        batchId: pending.batch.batchId,
        rows: pending.batch.rows.length,
        messages: pending.messages,
        outcome,
      });
      return true;
    } catch (error) {
      this.#stats.failedWrites += 1;
      if (error instanceof TimeSeriesInputError) {
        // The store rejects the rows themselves, so retrying the same batch would block every
        // later batch forever. The rejected counts are logged, never dropped silently.
        this.#pending = undefined;
        this.#stats.rejectedMessages += pending.messages;
        logger.error(
          "The store rejected batch {batchId}; dropped {messages} messages ({bytes} bytes): {error}",
          {
            batchId: pending.batch.batchId,
            messages: pending.messages,
            bytes: pending.bytes,
            error,
          },
        );
        return true;
      }
      logger.error(
        "Writing batch {batchId} failed; keeping {messages} messages for a retry: {error}",
        {
          batchId: pending.batch.batchId,
          rows: pending.batch.rows.length,
          messages: pending.messages,
          bytes: pending.bytes,
          error,
        },
      );
      return false;
    }
  }

  /** Returns true when no batch waits for a retry and the counters are empty. */
  get idle(): boolean {
    return this.#pending === undefined && this.#options.counters.keyCount === 0;
  }

  async #buildBatch(
    snapshot: CountSnapshot,
  ): Promise<{ batch: CounterBatch; messages: number; bytes: number }> {
    const { localDomain, attribution } = this.#options;
    const classified = new Map<string, ReturnType<typeof classifyTopic>>();
    const unitNodeIds = new Set<string>();
    const unitIds = new Set<string>();
    for (const counts of snapshot.values()) {
      for (const topic of counts.keys()) {
        if (classified.has(topic)) continue;
        const classification = classifyTopic(topic, localDomain);
        classified.set(topic, classification);
        // Foreign topics carry no local attribution, whatever ids they name.
        if (classification.domainKind !== "local") continue;
        if (classification.unitNodeId) unitNodeIds.add(classification.unitNodeId);
        if (classification.unitId) unitIds.add(classification.unitId);
      }
    }
    await attribution.prepare(unitNodeIds, unitIds);

    const rows: TopicCounterRow[] = [];
    let messages = 0;
    let bytes = 0;
    for (const [minute, counts] of snapshot) {
      for (const [topic, count] of counts) {
        const classification = classified.get(topic) ?? classifyTopic(topic, localDomain);
        let ids: Attribution = { unitNodeId: null, unitId: null, repoId: null };
        if (classification.domainKind === "local") {
          if (classification.unitNodeId) ids = attribution.forUnitNode(classification.unitNodeId);
          else if (classification.unitId) ids = attribution.forUnit(classification.unitId);
        }
        rows.push({
          minute: new Date(minute),
          topic,
          domain: classification.domain,
          domainKind: classification.domainKind,
          ...ids,
          messages: count.messages,
          bytes: count.bytes,
        });
        messages += count.messages;
        bytes += count.bytes;
      }
    }

    this.#sequence += 1;
    const batchId = `${this.#options.tapId}:${this.#runId}:${this.#sequence}`;
    return { batch: { batchId, tapId: this.#options.tapId, rows }, messages, bytes };
  }
}
