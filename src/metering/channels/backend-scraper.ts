/**
 * Requests per channel from the Pepeunit backend's Prometheus endpoint. The backend counts HTTP
 * requests in `http_requests_total{handler,method,status}` (prometheus-fastapi-instrumentator);
 * the difference between two scrapes is the number of requests in between, which is spread over
 * the UTC minutes of that interval.
 */
import type { PeriodicJob } from "../../jobs/loop.ts";
import { getNodeLogger } from "../../logging.ts";
import type { ChannelCountRow } from "../../timeseries/types.ts";
import { classifyHandler, HTTP_CHANNELS, type HttpChannel } from "./classify.ts";
import { spreadOverMinutes } from "./minutes.ts";
import { parsePrometheusText } from "./prometheus-text.ts";

const logger = getNodeLogger("metering", "channels");

export const BACKEND_PROMETHEUS_SOURCE = "backend-prometheus";
const REQUESTS_FAMILIES = new Set(["http_requests_total", "http_requests"]);
const START_TIME_FAMILY = "process_start_time_seconds";

export interface RequestCounters {
  /** Series key (its labels) → counter value. */
  series: Map<string, { channel: HttpChannel; value: number }>;
  /** `process_start_time_seconds` when the backend exports it; a change means a restart. */
  startTime: number | undefined;
}

/** Reads the request counters out of a scrape. Throws when the text is not the text format. */
export function readRequestCounters(text: string): RequestCounters {
  const series = new Map<string, { channel: HttpChannel; value: number }>();
  let startTime: number | undefined;
  for (const family of parsePrometheusText(text)) {
    if (family.name === START_TIME_FAMILY) {
      const value = Number(family.metrics[0]?.value);
      if (Number.isFinite(value)) startTime = value;
      continue;
    }
    if (!REQUESTS_FAMILIES.has(family.name)) continue;
    for (const metric of family.metrics) {
      const value = Number(metric.value);
      const labels = metric.labels ?? {};
      if (!Number.isFinite(value) || value < 0) continue;
      const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
      const entry = series.get(key);
      // The multiprocess collector can emit one series per worker with equal labels; they add up.
      if (entry !== undefined) entry.value += value;
      else series.set(key, { channel: classifyHandler(labels.handler ?? "none"), value });
    }
  }
  return { series, startTime };
}

/**
 * Returns requests per channel between two readings. A counter that went down was reset by a
 * backend restart, so its new value is the count since then. A series missing before counts in
 * full. A changed `process_start_time_seconds` marks every series as reset.
 */
export function counterDeltas(
  previous: RequestCounters,
  current: RequestCounters,
): Record<HttpChannel, number> {
  const deltas: Record<HttpChannel, number> = { graphql: 0, rest: 0, telegram: 0, other: 0 };
  const restarted =
    previous.startTime !== undefined &&
    current.startTime !== undefined &&
    current.startTime !== previous.startTime;
  for (const [key, { channel, value }] of current.series) {
    const before = restarted ? undefined : previous.series.get(key)?.value;
    deltas[channel] += before === undefined || value < before ? value : value - before;
  }
  return deltas;
}

/** Destination of channel counts; a row replaces the stored row of its minute, channel and source. */
export interface ChannelCountSink {
  writeChannelCounts(rows: ChannelCountRow[]): Promise<void>;
}

export interface BackendChannelScraperOptions {
  url: URL;
  timeoutMs?: number;
  now?: () => number;
}

/**
 * Scrapes the backend and keeps per-minute totals until they are written. The first scrape only
 * sets the baseline: requests before it are not attributed to any minute.
 *
 * NOTE: the baseline lives in memory, so requests between the last scrape before a node restart
 * and the first scrape after it are not counted.
 */
export class BackendChannelScraper {
  readonly #url: URL;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #previous: { counters: RequestCounters; at: number } | undefined;
  /** Minute start → counts of minutes not yet finished or not yet written. */
  readonly #minutes = new Map<number, Record<HttpChannel, number>>();
  readonly #unwritten = new Set<number>();

  constructor(options: BackendChannelScraperOptions) {
    this.#url = options.url;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Scrapes once and adds the requests since the previous scrape; throws on a failed scrape. */
  async scrape(): Promise<void> {
    const response = await fetch(this.#url, {
      headers: { accept: "text/plain;version=0.0.4" },
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    if (!response.ok) {
      throw new Error(
        `Backend metrics at ${this.#url.origin}${this.#url.pathname} responded with HTTP ${response.status}`,
      );
    }
    const counters = readRequestCounters(await response.text());
    const at = this.#now();
    const previous = this.#previous;
    this.#previous = { counters, at };
    if (previous === undefined) return;

    // A missed scrape widens the interval; its requests are spread over all minutes it spans.
    const deltas = counterDeltas(previous.counters, counters);
    for (const channel of HTTP_CHANNELS) {
      for (const [minute, count] of spreadOverMinutes(deltas[channel], previous.at, at)) {
        const totals = this.#minutes.get(minute) ?? { graphql: 0, rest: 0, telegram: 0, other: 0 };
        totals[channel] += count;
        this.#minutes.set(minute, totals);
        this.#unwritten.add(minute);
      }
    }
    // Minutes inside the interval with no requests are still known to be zero.
    for (let minute = previous.at - (previous.at % 60_000); minute < at; minute += 60_000) {
      if (!this.#minutes.has(minute)) {
        this.#minutes.set(minute, { graphql: 0, rest: 0, telegram: 0, other: 0 });
        this.#unwritten.add(minute);
      }
    }
  }

  /** Rows of every minute changed since the last {@link markWritten}, with their full totals. */
  pendingRows(): ChannelCountRow[] {
    const rows: ChannelCountRow[] = [];
    for (const minute of [...this.#unwritten].sort((a, b) => a - b)) {
      const totals = this.#minutes.get(minute);
      if (totals === undefined) continue;
      for (const channel of HTTP_CHANNELS) {
        rows.push({
          minute: new Date(minute),
          channel,
          source: BACKEND_PROMETHEUS_SOURCE,
          count: totals[channel],
        });
      }
    }
    return rows;
  }

  /** Marks the pending rows as stored and drops minutes that no later scrape can change. */
  markWritten(): void {
    this.#unwritten.clear();
    const lastAt = this.#previous?.at;
    if (lastAt === undefined) return;
    for (const minute of this.#minutes.keys()) {
      if (minute + 60_000 <= lastAt) this.#minutes.delete(minute);
    }
  }
}

/**
 * Creates a periodic job that scrapes, then writes the changed minutes. A failed scrape is logged and the
 * minutes already counted are still written; a failed write keeps them for the next run.
 */
export function backendChannelJob(
  scraper: BackendChannelScraper,
  sink: ChannelCountSink,
  intervalMs = 60_000,
): PeriodicJob {
  let scrapeFailures = 0;
  return {
    name: "backend-channels",
    intervalMs,
    run: async () => {
      try {
        await scraper.scrape();
        if (scrapeFailures > 0) {
          logger.info("Backend metrics scrape recovered after {failures} failures", {
            failures: scrapeFailures,
          });
        }
        scrapeFailures = 0;
      } catch (error) {
        scrapeFailures += 1;
        if (scrapeFailures <= 3 || scrapeFailures % 60 === 0) {
          logger.warning(
            "Backend metrics scrape failed ({failures} in a row); its requests count at the next scrape: {error}",
            { failures: scrapeFailures, error },
          );
        }
      }
      const rows = scraper.pendingRows();
      if (rows.length === 0) return false;
      await sink.writeChannelCounts(rows);
      scraper.markWritten();
      return false;
    },
  };
}
