/**
 * Hot-topic metering on the broker: EMQX's topic metrics follow the N busiest topics that the
 * tap reports, and their counters become per-minute counts.
 *
 * The counts are a second, independent measurement of the same messages the tap counts, so they
 * must never be added to the tap's counts. They therefore leave through their own sink interface,
 * {@link EmqxTopicCounterSink}, whose method and row type differ from the tap's `CounterSink`;
 * the type checker rejects passing one where the other is expected.
 *
 * The meter treats every topic registered in EMQX's topic metrics as its own: it deletes
 * registered topics that are not among the N hottest. Run exactly one meter per EMQX cluster.
 */
import { getNodeLogger } from "../../logging.ts";
import type { BatchWriteOutcome, TopicCounterRow } from "../../timeseries/types.ts";
import type { EmqxClient, TopicMetrics } from "./client.ts";
import { counterDelta, minuteOfInterval } from "./counters.ts";
import { EmqxApiError } from "./errors.ts";

const logger = getNodeLogger("metering", "emqx");

/** The largest N the meter accepts, leaving room under EMQX's cap of 512 topics. */
export const MAX_HOT_TOPICS = 500;
export const DEFAULT_HOT_TOPICS = 100;
/** Topics EMQX rejected are not offered again until this many others were rejected. */
const MAX_REMEMBERED_REJECTIONS = 1_000;

/**
 * Counts of one topic in one UTC minute as EMQX's topic metrics measured them. `messages` is
 * `messages.in.count` (messages published to the topic), the same quantity the tap counts.
 * `bytes` is always 0, because EMQX's topic metrics count no bytes.
 */
export interface EmqxTopicCounterRow extends TopicCounterRow {
  /** Deliveries to subscribers (`messages.out.count`). */
  messagesOut: number;
  /** Messages dropped on this topic (`messages.dropped.count`). */
  messagesDropped: number;
}

/** One reading of the hot topics. Writing the same `batchId` twice must count it once. */
export interface EmqxTopicCounterBatch {
  batchId: string;
  /** Identifier of the measurement, `emqx` unless configured; never a tap id. */
  source: string;
  rows: EmqxTopicCounterRow[];
}

/** Store of broker-side topic counts, kept apart from the tap's counts. */
export interface EmqxTopicCounterSink {
  writeEmqxTopicCounters(batch: EmqxTopicCounterBatch): Promise<BatchWriteOutcome>;
}

export type TopicAttribution = Pick<
  TopicCounterRow,
  "domain" | "domainKind" | "unitNodeId" | "unitId" | "repoId"
>;

export interface HotTopicMeterOptions {
  client: Pick<EmqxClient, "listTopicMetrics" | "registerTopicMetrics" | "deleteTopicMetrics">;
  /** Topic names ranked by load, busiest first, for example from the tap's recent counts. */
  hotTopics: () => readonly string[] | Promise<readonly string[]>;
  sink: EmqxTopicCounterSink;
  /** Domain and Unit attribution of a topic, as the tap attributes its rows. */
  attribute: (topic: string) => TopicAttribution | Promise<TopicAttribution>;
  /** How many topics EMQX follows, from 1 to {@link MAX_HOT_TOPICS}; 100 when unset. */
  maxTopics?: number;
  source?: string;
  now?: () => Date;
}

/** Outcome of one run, for the caller to log or export as metrics. */
export interface HotTopicRunSummary {
  topicsRead: number;
  rowsWritten: number;
  registered: number;
  deleted: number;
  /** True when EMQX returned `EXCEED_LIMIT` even after the meter deleted the topics it did not need. */
  limitExceeded: boolean;
}

interface Baseline {
  at: Date;
  in: number;
  out: number;
  dropped: number;
  createTime: string;
  resetTime: string | undefined;
}

/** Keeps EMQX's topic metrics on the hottest topics and reads them into per-minute rows. */
export class HotTopicMeter {
  readonly #options: HotTopicMeterOptions;
  readonly #maxTopics: number;
  readonly #source: string;
  readonly #now: () => Date;
  readonly #baselines = new Map<string, Baseline>();
  /** Topics this meter registered and has not read yet; their counters started at zero. */
  readonly #registeredAt = new Map<string, Date>();
  readonly #rejected = new Set<string>();
  #pending: EmqxTopicCounterBatch | undefined;

  constructor(options: HotTopicMeterOptions) {
    const maxTopics = options.maxTopics ?? DEFAULT_HOT_TOPICS;
    if (!Number.isInteger(maxTopics) || maxTopics < 1 || maxTopics > MAX_HOT_TOPICS) {
      throw new RangeError(
        `maxTopics must be a whole number from 1 to ${MAX_HOT_TOPICS} (EMQX accepts at most 512 topics); got ${maxTopics}`,
      );
    }
    this.#options = options;
    this.#maxTopics = maxTopics;
    this.#source = options.source ?? "emqx";
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Reads the registered topics, writes their deltas to the sink, then registers and deletes
   * topics to follow the current hot list. When the sink fails, the batch is kept and written
   * again, with the same id, at the start of the next run. Until it is written, the meter reads
   * nothing new, so EMQX's counters keep the counts and none are lost. Throws on a failure of
   * EMQX or the sink, which the job loop logs.
   */
  async runOnce(): Promise<HotTopicRunSummary> {
    const summary: HotTopicRunSummary = {
      topicsRead: 0,
      rowsWritten: 0,
      registered: 0,
      deleted: 0,
      limitExceeded: false,
    };
    if (this.#pending !== undefined) {
      await this.#write(this.#pending);
      summary.rowsWritten += this.#pending.rows.length;
      this.#pending = undefined;
    }

    const listed = await this.#options.client.listTopicMetrics();
    const at = this.#now();
    summary.topicsRead = listed.length;
    const batch: EmqxTopicCounterBatch = {
      batchId: `${this.#source}-${at.getTime()}`,
      source: this.#source,
      rows: await this.#rowsFor(listed, at),
    };
    if (batch.rows.length > 0) {
      this.#pending = batch;
      await this.#write(batch);
      this.#pending = undefined;
      summary.rowsWritten += batch.rows.length;
    }

    await this.#follow(new Set(listed.map((item) => item.topic)), summary);
    return summary;
  }

  async #write(batch: EmqxTopicCounterBatch): Promise<void> {
    const outcome = await this.#options.sink.writeEmqxTopicCounters(batch);
    if (outcome === "duplicate") {
      logger.info("Batch {batchId} of EMQX topic counts was already stored", {
        batchId: batch.batchId,
      });
    }
  }

  /**
   * Computes the delta of each listed topic since its previous reading. The baselines move only
   * after every row is built, so a failed attribution leaves the counts for the next run.
   */
  async #rowsFor(listed: readonly TopicMetrics[], at: Date): Promise<EmqxTopicCounterRow[]> {
    const rows: EmqxTopicCounterRow[] = [];
    const next = new Map<string, Baseline>();
    const consumedRegistrations: string[] = [];
    for (const item of listed) {
      next.set(item.topic, {
        at,
        in: item.messagesIn,
        out: item.messagesOut,
        dropped: item.messagesDropped,
        createTime: item.createTime,
        resetTime: item.resetTime,
      });
      const previous = this.#previousReading(item);
      if (previous === undefined) continue;
      if (!this.#baselines.has(item.topic)) consumedRegistrations.push(item.topic);

      // A reset or a re-registration can leave a counter above its old value, so the reset
      // and create times are checked as well as the values.
      const restarted =
        previous.createTime !== item.createTime || previous.resetTime !== item.resetTime;
      const delta = (before: number, now: number) => (restarted ? now : counterDelta(before, now));
      const messages = delta(previous.in, item.messagesIn);
      const messagesOut = delta(previous.out, item.messagesOut);
      const messagesDropped = delta(previous.dropped, item.messagesDropped);
      if (messages === 0 && messagesOut === 0 && messagesDropped === 0) continue;

      rows.push({
        minute: minuteOfInterval(previous.at, at),
        topic: item.topic,
        ...(await this.#options.attribute(item.topic)),
        messages,
        bytes: 0,
        messagesOut,
        messagesDropped,
      });
    }
    // Topics no longer listed were deleted or lost; their baselines go with them.
    this.#baselines.clear();
    for (const [topic, baseline] of next) this.#baselines.set(topic, baseline);
    for (const topic of consumedRegistrations) this.#registeredAt.delete(topic);
    return rows;
  }

  /**
   * The reading to subtract from `item`. A topic this meter registered started from zero. A
   * topic found registered by someone else, or before a restart of the node, has unknown
   * history, so its first reading only sets the baseline.
   */
  #previousReading(item: TopicMetrics): Baseline | undefined {
    const baseline = this.#baselines.get(item.topic);
    if (baseline !== undefined) return baseline;
    const registeredAt = this.#registeredAt.get(item.topic);
    if (registeredAt === undefined) return undefined;
    return {
      at: registeredAt,
      in: 0,
      out: 0,
      dropped: 0,
      createTime: item.createTime,
      resetTime: item.resetTime,
    };
  }

  /** Deletes registered topics that left the hot list, then registers the new ones. */
  async #follow(registered: Set<string>, summary: HotTopicRunSummary): Promise<void> {
    const wanted = await this.#wantedTopics();
    for (const topic of registered) {
      if (wanted.has(topic)) continue;
      await this.#delete(topic, registered, summary);
    }
    for (const topic of wanted) {
      if (registered.has(topic)) continue;
      const outcome = await this.#register(topic, registered, wanted, summary);
      if (outcome === "limit_exceeded") {
        summary.limitExceeded = true;
        logger.warning(
          "EMQX topic metrics are full although the meter deleted the topics it does not follow; {missing} hot topics stay unregistered until the next run",
          { missing: [...wanted].filter((name) => !registered.has(name)).length },
        );
        return;
      }
    }
  }

  async #wantedTopics(): Promise<Set<string>> {
    const wanted = new Set<string>();
    for (const topic of await this.#options.hotTopics()) {
      if (wanted.size >= this.#maxTopics) break;
      if (this.#rejected.has(topic) || !isTopicName(topic)) continue;
      wanted.add(topic);
    }
    return wanted;
  }

  async #delete(topic: string, registered: Set<string>, summary: HotTopicRunSummary) {
    await this.#options.client.deleteTopicMetrics(topic);
    registered.delete(topic);
    this.#baselines.delete(topic);
    this.#registeredAt.delete(topic);
    summary.deleted += 1;
  }

  /**
   * Registers one topic. On `EXCEED_LIMIT` it reads the current list, which another client may
   * have filled, deletes what is not wanted and tries once more.
   */
  async #register(
    topic: string,
    registered: Set<string>,
    wanted: Set<string>,
    summary: HotTopicRunSummary,
  ): Promise<"done" | "limit_exceeded"> {
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      const registeredAt = this.#now();
      let outcome: Awaited<ReturnType<EmqxClient["registerTopicMetrics"]>>;
      try {
        outcome = await this.#options.client.registerTopicMetrics(topic);
      } catch (error) {
        if (!(error instanceof EmqxApiError) || error.status !== 400) throw error;
        this.#reject(topic, error);
        return "done";
      }
      if (outcome === "registered") {
        this.#registeredAt.set(topic, registeredAt);
        registered.add(topic);
        summary.registered += 1;
        return "done";
      }
      if (outcome === "already_registered") {
        registered.add(topic);
        return "done";
      }
      if (attempt === 2) break;
      logger.info("EMQX topic metrics are full; reading the registered topics to free slots");
      for (const current of await this.#options.client.listTopicMetrics()) {
        registered.add(current.topic);
        if (!wanted.has(current.topic)) await this.#delete(current.topic, registered, summary);
      }
    }
    return "limit_exceeded";
  }

  #reject(topic: string, error: EmqxApiError): void {
    if (this.#rejected.size >= MAX_REMEMBERED_REJECTIONS) this.#rejected.clear();
    this.#rejected.add(topic);
    logger.warning("EMQX rejected topic {topic} for topic metrics: {error}", { topic, error });
  }
}

/** True for a topic name that EMQX can meter: not empty and without wildcard levels. */
export function isTopicName(topic: string): boolean {
  if (topic === "" || topic.includes("\u0000")) return false;
  return !topic.split("/").some((level) => level === "+" || level === "#");
}

/**
 * Attribution from the topic alone: the first level is the instance domain, local when it is
 * `localDomain`. Unit ids stay null; pass the tap's attribution when it is available.
 */
export function attributeByDomain(localDomain: string): (topic: string) => TopicAttribution {
  return (topic) => {
    const domain = topic.split("/", 1)[0] ?? "";
    return {
      domain,
      domainKind: domain === localDomain ? "local" : "foreign",
      unitNodeId: null,
      unitId: null,
      repoId: null,
    };
  };
}
