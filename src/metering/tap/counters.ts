/**
 * In-memory message and byte counters of the tap, per UTC minute and topic. Counting a message is
 * two map lookups and two additions, so it runs inside the MQTT client's message handler.
 */
import { topicDomain } from "../topics.ts";

export const MINUTE_MS = 60_000;

/** Messages and bytes of one topic within one minute. */
export interface TopicCount {
  messages: number;
  bytes: number;
}

/** Counts of one minute, keyed by topic. */
export type MinuteCounts = Map<string, TopicCount>;

/** Counts keyed by minute start (epoch milliseconds), then by topic. */
export type CountSnapshot = Map<number, MinuteCounts>;

/**
 * Topic of the row that takes the counts of new topics once {@link TopicCounters} contains its
 * maximum number of keys: `<domain>/#`. MQTT forbids `#` in a published topic, so this row can
 * never be confused with a real topic.
 */
export function overflowTopic(domain: string): string {
  return `${domain}/#`;
}

/** Returns the start of the UTC minute that contains `epochMs`. */
export function minuteStart(epochMs: number): number {
  return epochMs - (epochMs % MINUTE_MS);
}

/**
 * Counters of the messages not yet handed to the sink.
 *
 * The number of distinct (minute, topic) keys is capped at `maxKeys`. Past the cap, a message on a
 * topic that has no key yet is counted on the overflow row of its domain ({@link overflowTopic}), so
 * the message and its bytes still count for the domain but lose their topic and attribution. This
 * bounds memory when the sink is down for long while many distinct topics arrive.
 */
export class TopicCounters {
  readonly #maxKeys: number;
  #minutes: CountSnapshot = new Map();
  #keys = 0;
  #overflowMessages = 0;

  constructor(maxKeys: number) {
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive whole number, got ${maxKeys}`);
    }
    this.#maxKeys = maxKeys;
  }

  /** Number of distinct (minute, topic) keys held now. */
  get keyCount(): number {
    return this.#keys;
  }

  /** Messages counted on overflow rows since the tap started. */
  get overflowMessages(): number {
    return this.#overflowMessages;
  }

  /** Counts one message of `bytes` bytes on `topic` at `epochMs`. */
  add(topic: string, bytes: number, epochMs: number): void {
    this.addCount(minuteStart(epochMs), topic, 1, bytes);
  }

  /** Adds `messages` and `bytes` to the key (`minute`, `topic`), creating it when allowed. */
  addCount(minute: number, topic: string, messages: number, bytes: number): void {
    let counts = this.#minutes.get(minute);
    if (!counts) {
      counts = new Map();
      this.#minutes.set(minute, counts);
    }
    let count = counts.get(topic);
    if (!count) {
      if (this.#keys >= this.#maxKeys) {
        topic = overflowTopic(topicDomain(topic));
        count = counts.get(topic);
        this.#overflowMessages += messages;
      }
      if (!count) {
        // The overflow row itself may exceed the cap by one key per domain and minute.
        count = { messages: 0, bytes: 0 };
        counts.set(topic, count);
        this.#keys += 1;
      }
    }
    count.messages += messages;
    count.bytes += bytes;
  }

  /** Removes and returns every count held; new messages start a fresh set. */
  take(): CountSnapshot {
    const snapshot = this.#minutes;
    this.#minutes = new Map();
    this.#keys = 0;
    return snapshot;
  }

  /** Adds a snapshot back, for counts that could not be handed to the sink. */
  restore(snapshot: CountSnapshot): void {
    for (const [minute, counts] of snapshot) {
      for (const [topic, count] of counts) {
        this.addCount(minute, topic, count.messages, count.bytes);
      }
    }
  }
}

/** Returns the total messages and bytes of a snapshot, for logs. */
export function totalCounts(snapshot: CountSnapshot): TopicCount & { topics: number } {
  let messages = 0;
  let bytes = 0;
  let topics = 0;
  for (const counts of snapshot.values()) {
    for (const count of counts.values()) {
      messages += count.messages;
      bytes += count.bytes;
      topics += 1;
    }
  }
  return { messages, bytes, topics };
}
