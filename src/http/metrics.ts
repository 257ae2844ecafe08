/**
 * The node's own Prometheus endpoint (`GET /metrics`), on a prom-client registry that belongs to
 * the node alone: process metrics, HTTP requests, Fedify queue depth, catalogue sizes and the
 * MQTT tap's counters.
 *
 * Series names start with `pepeunit_node_`, except prom-client's default process metrics
 * (`process_cpu_seconds_total`, `nodejs_eventloop_lag_seconds`, ...), which keep their standard
 * names so that existing Node.js dashboards work unchanged.
 */
import type { MessageQueueDepth } from "@fedify/fedify";
import { sql } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { DatabaseLike } from "../db/client.ts";
import { repos, units } from "../db/schema/catalogue.ts";
import { federatedRepos, federatedUnits } from "../db/schema/federation.ts";
import { getNodeLogger } from "../logging.ts";
import { deniedRepositoryCounter } from "../policy/git-hosts.ts";

const logger = getNodeLogger("http", "metrics");

export const METRIC_PREFIX = "pepeunit_node_";

export interface MetricsRouteOptions {
  /** Database for the catalogue sizes, counted on every scrape; no catalogue series without it. */
  db?: DatabaseLike;
  /** Fedify queues by name, such as `{ outbox: queue }`; each is asked for its depth on scrape. */
  queues?: Record<string, { getDepth(): Promise<MessageQueueDepth> }>;
  /** Adds prom-client's default process metrics; true when unset. */
  defaultMetrics?: boolean;
}

/** Counters the MQTT tap feeds; the lead wires them to the tap's flush. */
export interface TapMetrics {
  /** Adds one flush's totals: messages and payload bytes counted. */
  recordFlush(counts: { messages: number; bytes: number }): void;
  /** Counts one flush that the store rejected; the tap is expected to retry its batch. */
  recordFlushFailure(): void;
  /**
   * Adds messages the tap estimates it missed while disconnected (its recent rate times the time
   * it was away); an estimate, not a count.
   */
  recordMissedMessages(estimate: number): void;
}

export interface NodeMetrics {
  registry: Registry;
  /** Handler of `GET /metrics` in the Prometheus text format. */
  handler: (c: Context) => Promise<Response>;
  /** Counts every request by method, route pattern and status; mount it before the routes. */
  httpMiddleware: MiddlewareHandler;
  tap: TapMetrics;
}

/** Builds the node's registry and the handlers that serve and feed it. */
export function createMetricsRoute(options: MetricsRouteOptions = {}): NodeMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  const httpMiddleware = createHttpMiddleware(registry);
  registerQueueDepth(registry, options.queues ?? {});
  if (options.db !== undefined) registerCatalogueSizes(registry, options.db);
  const tap = createTapMetrics(registry);
  registry.registerMetric(deniedRepositoryCounter);

  const handler = async (c: Context) => {
    const body = await registry.metrics();
    return c.body(body, 200, { "content-type": registry.contentType });
  };
  return { registry, handler, httpMiddleware, tap };
}

function createHttpMiddleware(registry: Registry): MiddlewareHandler {
  const labelNames = ["method", "route", "status"] as const;
  const requests = new Counter({
    name: `${METRIC_PREFIX}http_requests_total`,
    help: "HTTP requests served, by method, route pattern and status code",
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${METRIC_PREFIX}http_request_duration_seconds`,
    help: "Time from receiving an HTTP request to returning its response, in seconds",
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const middleware: MiddlewareHandler = async (c, next) => {
    const stopTimer = duration.startTimer();
    try {
      await next();
    } finally {
      // The route pattern, not the path, keeps the number of series bounded.
      const labels = {
        method: c.req.method,
        route: respondingRoute(c, middleware),
        status: String(c.res.status),
      };
      requests.inc(labels);
      stopTimer(labels);
    }
  };
  return middleware;
}

/**
 * Returns the pattern of the route that produced the response, or `unmatched` when no route did.
 * When Hono falls through to its not-found handler, the last route it ran is this middleware.
 */
function respondingRoute(c: Context, self: MiddlewareHandler): string {
  const route = matchedRoutes(c)[c.req.routeIndex];
  if (route === undefined || route.handler === self) return "unmatched";
  return route.path;
}

function registerQueueDepth(
  registry: Registry,
  queues: Record<string, { getDepth(): Promise<MessageQueueDepth> }>,
): void {
  const failures = failureLogger("queue depth");
  new Gauge({
    name: `${METRIC_PREFIX}queue_messages`,
    help: "Messages waiting in a Fedify queue: ready to run now, or delayed until later",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [queue, source] of Object.entries(queues)) {
        try {
          const depth = await source.getDepth();
          this.set({ queue, state: "ready" }, depth.ready ?? 0);
          this.set({ queue, state: "delayed" }, depth.delayed ?? 0);
          failures.succeeded();
        } catch (error) {
          failures.failed(error);
        }
      }
    },
  });
}

function registerCatalogueSizes(registry: Registry, db: DatabaseLike): void {
  const failures = failureLogger("catalogue sizes");
  new Gauge({
    name: `${METRIC_PREFIX}catalogue_entities`,
    help: "Repos and Units in the catalogue, local or federated from other instances",
    labelNames: ["kind", "origin"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        // One round trip; count(*) on these tables stays cheap at catalogue sizes.
        const result = await db.execute<{
          local_repos: number;
          local_units: number;
          federated_repos: number;
          federated_units: number;
        }>(sql`select
            (select count(*) from ${repos})::int as local_repos,
            (select count(*) from ${units})::int as local_units,
            (select count(*) from ${federatedRepos})::int as federated_repos,
            (select count(*) from ${federatedUnits})::int as federated_units`);
        const row = result.rows[0];
        if (row === undefined) return;
        this.set({ kind: "repo", origin: "local" }, row.local_repos);
        this.set({ kind: "unit", origin: "local" }, row.local_units);
        this.set({ kind: "repo", origin: "federated" }, row.federated_repos);
        this.set({ kind: "unit", origin: "federated" }, row.federated_units);
        failures.succeeded();
      } catch (error) {
        failures.failed(error);
      }
    },
  });
}

function createTapMetrics(registry: Registry): TapMetrics {
  const messages = new Counter({
    name: `${METRIC_PREFIX}tap_messages_total`,
    help: "MQTT messages the tap counted and flushed to the store",
    registers: [registry],
  });
  const bytes = new Counter({
    name: `${METRIC_PREFIX}tap_bytes_total`,
    help: "Payload bytes of the MQTT messages the tap counted",
    registers: [registry],
  });
  const flushFailures = new Counter({
    name: `${METRIC_PREFIX}tap_flush_failures_total`,
    help: "Tap flushes the store rejected; their batches are retried",
    registers: [registry],
  });
  const missed = new Counter({
    name: `${METRIC_PREFIX}tap_missed_messages_estimated_total`,
    help: "Estimate of MQTT messages the broker carried but the tap did not count",
    registers: [registry],
  });
  return {
    recordFlush(counts) {
      messages.inc(nonNegative(counts.messages, "messages"));
      bytes.inc(nonNegative(counts.bytes, "bytes"));
    },
    recordFlushFailure() {
      flushFailures.inc();
    },
    recordMissedMessages(estimate) {
      missed.inc(nonNegative(estimate, "estimate"));
    },
  };
}

/** Counters only go up; a negative or non-finite input is a caller bug and is reported. */
function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a finite number of at least 0; got ${value}`);
  }
  return value;
}

/**
 * Logs the first three failures of a scrape-time collector in a row and then every 60th, so a
 * database outage does not log once per scrape.
 */
function failureLogger(collector: string) {
  let failuresInRow = 0;
  return {
    succeeded() {
      if (failuresInRow > 0) logger.info("Metrics collector {collector} recovered", { collector });
      failuresInRow = 0;
    },
    failed(error: unknown) {
      failuresInRow += 1;
      if (failuresInRow <= 3 || failuresInRow % 60 === 0) {
        logger.warning(
          "Metrics collector {collector} failed ({failuresInRow} in a row); its series are left out of this scrape: {error}",
          { collector, failuresInRow, error },
        );
      }
    },
  };
}
