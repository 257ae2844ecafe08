/**
 * The MQTT channel of the channel counters, fed by the tap: after each counter batch that the
 * store accepted, the recorder writes the running total of the minutes the batch touched.
 */

import { getNodeLogger } from "../../logging.ts";
import type { ChannelCountRow, CounterBatch } from "../../timeseries/types.ts";
import { mqttChannelRows, TAP_SOURCE } from "./mqtt.ts";

const logger = getNodeLogger("metering", "channels");

/** Minutes older than this are forgotten once written; batches reach them only after outages. */
const KEEP_MINUTES_MS = 15 * 60_000;

export interface ChannelRowSink {
  writeChannelCounts(rows: ChannelCountRow[]): Promise<void>;
}

/**
 * Keeps one process's MQTT message totals per minute. Its source is unique per tap process
 * (`tap:<tap id>:<start time>`), because a channel row replaces the earlier row of the same
 * minute and source: several taps, or a restarted tap, each own their rows, and the channel
 * total is their sum.
 */
export class TapChannelRecorder {
  readonly #sink: ChannelRowSink;
  readonly #startedAt = Date.now();
  readonly #totals = new Map<number, number>();
  /** Minutes whose latest total is not written yet (the last write failed). */
  readonly #unwritten = new Set<number>();

  constructor(sink: ChannelRowSink) {
    this.#sink = sink;
  }

  /**
   * Adds a batch the store accepted and writes the totals of its minutes; never throws.
   *
   * NOTE: on ClickHouse a retry that races its own first attempt can be reported `written` twice
   * (the decision record on the time-series store explains when), and then this batch counts twice
   * here, while the topic counters still count it once.
   */
  async record(batch: CounterBatch): Promise<void> {
    for (const row of batch.rows) {
      const minute = row.minute.getTime();
      this.#totals.set(minute, (this.#totals.get(minute) ?? 0) + row.messages);
      this.#unwritten.add(minute);
    }
    const minutes = [...this.#unwritten];
    const source = `${TAP_SOURCE}:${batch.tapId}:${this.#startedAt}`;
    try {
      await this.#sink.writeChannelCounts(
        mqttChannelRows(
          minutes.map((minute) => ({
            minute: new Date(minute),
            messages: this.#totals.get(minute) ?? 0,
          })),
          source,
        ),
      );
      this.#unwritten.clear();
    } catch (error) {
      logger.warning(
        "Writing MQTT channel counts of {count} minutes failed; retried with the next batch: {error}",
        {
          count: minutes.length,
          error,
        },
      );
    }
    const oldest = Date.now() - KEEP_MINUTES_MS;
    for (const minute of this.#totals.keys()) {
      if (minute < oldest && !this.#unwritten.has(minute)) this.#totals.delete(minute);
    }
  }
}
