/**
 * Client of the EMQX 5.8 management API (`/api/v5`) for metering: global counters, stats, node
 * uptime, per-topic metrics and the Prometheus exposition.
 *
 * It authenticates with an EMQX API key and secret as HTTP Basic credentials, which EMQX 5
 * accepts on every `/api/v5` path used here and which, unlike dashboard login tokens, do not
 * expire. Paths, status codes and error codes follow the EMQX v5.8.8 sources.
 */
import type { Config } from "../../config.ts";
import { EmqxApiError } from "./errors.ts";
import { type PrometheusStats, parsePrometheusStats } from "./prometheus.ts";
import {
  countersResponseSchema,
  type EmqxNode,
  errorBodySchema,
  nodesResponseSchema,
  perNodeCountersSchema,
  sumCounters,
  type TopicMetrics,
  topicMetricsSchema,
  toTopicMetrics,
} from "./responses.ts";

export type { EmqxNode, TopicMetrics } from "./responses.ts";

/** The fixed number of topics EMQX 5.8 can hold in topic metrics (`MAX_TOPICS` in the broker). */
export const EMQX_TOPIC_METRICS_LIMIT = 512;

const DEFAULT_TIMEOUT_MS = 10_000;

export interface EmqxClientOptions {
  /**
   * The dashboard listener, such as `http://127.0.0.1:18083`, or a URL that already ends in
   * `/api/v5`. Credentials in the URL are used when `apiKey` is not given.
   */
  url: URL;
  apiKey?: string | undefined;
  apiSecret?: string | undefined;
  /** Milliseconds one request may take, reading the body included; 10,000 when unset. */
  timeoutMs?: number;
}

/** Result of registering a topic for topic metrics. */
export type RegisterTopicOutcome =
  /** EMQX now counts the topic, starting from zero. */
  | "registered"
  /** The topic was registered before; its counters were left as they were. */
  | "already_registered"
  /** EMQX already contains {@link EMQX_TOPIC_METRICS_LIMIT} topics (`409 EXCEED_LIMIT`). */
  | "limit_exceeded";

/** `mode` of the Prometheus endpoint; EMQX falls back to `node` for an unknown mode. */
export type PrometheusMode = "node" | "all_nodes_aggregated" | "all_nodes_unaggregated";

interface RequestOptions {
  query?: Record<string, string>;
  body?: unknown;
  accept?: string;
}

interface RawResponse {
  endpoint: string;
  status: number;
  text: string;
}

/** A client for one EMQX cluster. Methods throw {@link EmqxApiError} on every failure. */
export class EmqxClient {
  readonly #apiBase: URL;
  readonly #authorization: string;
  readonly #timeoutMs: number;

  constructor(options: EmqxClientOptions) {
    const base = new URL(options.url.href);
    const apiKey = options.apiKey ?? decodeURIComponent(base.username);
    const apiSecret = options.apiSecret ?? decodeURIComponent(base.password);
    if (apiKey === "" || apiSecret === "") {
      throw new Error(
        "The EMQX API needs an API key and secret: set PU_NODE_EMQX_API_KEY and " +
          "PU_NODE_EMQX_API_SECRET (create the key under System > API Keys in the EMQX dashboard)",
      );
    }
    // fetch() rejects URLs that carry credentials, and they must not reach error messages.
    base.username = "";
    base.password = "";
    base.search = "";
    base.hash = "";
    const basePath = base.pathname.replace(/\/+$/, "");
    base.pathname = basePath.endsWith("/api/v5") ? `${basePath}/` : `${basePath}/api/v5/`;
    this.#apiBase = base;
    this.#authorization = `Basic ${Buffer.from(`${apiKey}:${apiSecret}`).toString("base64")}`;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The API root, such as `http://127.0.0.1:18083/api/v5/`; it never contains credentials. */
  get apiBase(): URL {
    return new URL(this.#apiBase.href);
  }

  /** Global counters summed over all nodes (`GET /metrics?aggregate=true`). */
  async getMetrics(): Promise<Record<string, number>> {
    const response = await this.#call("GET", "metrics", { query: { aggregate: "true" } });
    return sumCounters(parseJson(response, countersResponseSchema));
  }

  /**
   * Global counters of each node, by node name (`GET /metrics?aggregate=false`). Deltas per
   * node stay exact when one node of a cluster restarts, which a cluster-wide sum does not.
   */
  async getMetricsByNode(): Promise<Map<string, Record<string, number>>> {
    const response = await this.#call("GET", "metrics", { query: { aggregate: "false" } });
    const byNode = new Map<string, Record<string, number>>();
    for (const entry of parseJson(response, perNodeCountersSchema)) {
      const { node, ...values } = entry;
      const counters: Record<string, number> = {};
      for (const [key, value] of Object.entries(values)) {
        if (typeof value === "number") counters[key] = value;
      }
      byNode.set(node, counters);
    }
    return byNode;
  }

  /** Gauges such as `connections.count` and `topics.count` over all nodes (`GET /stats`). */
  async getStats(): Promise<Record<string, number>> {
    const response = await this.#call("GET", "stats", { query: { aggregate: "true" } });
    return sumCounters(parseJson(response, countersResponseSchema));
  }

  /** Lists the cluster's nodes with their status and uptime (`GET /nodes`). */
  async listNodes(): Promise<EmqxNode[]> {
    const response = await this.#call("GET", "nodes");
    return parseJson(response, nodesResponseSchema).map((node) => ({
      node: node.node,
      status: node.node_status,
      uptimeMs: node.uptime,
      version: node.version,
    }));
  }

  /** Lists every registered topic with its metrics, summed over the cluster. */
  async listTopicMetrics(): Promise<TopicMetrics[]> {
    const response = await this.#call("GET", "mqtt/topic_metrics");
    return parseJson(response, topicMetricsSchema.array()).map((item) =>
      checkedTopicMetrics(response, item),
    );
  }

  /** Metrics of one topic, or undefined when it is not registered (`404 TOPIC_NOT_FOUND`). */
  async getTopicMetrics(topic: string): Promise<TopicMetrics | undefined> {
    const response = await this.#call("GET", topicPath(topic), {}, [404]);
    if (response.status === 404) {
      expectErrorCode(response, "TOPIC_NOT_FOUND");
      return undefined;
    }
    return checkedTopicMetrics(response, parseJson(response, topicMetricsSchema));
  }

  /**
   * Registers an exact topic for topic metrics. EMQX rejects a wildcard or empty topic with
   * `400 BAD_TOPIC` or `400 BAD_REQUEST`, which this method throws as {@link EmqxApiError}.
   * EMQX also uses `400 BAD_TOPIC` for a topic registered before, telling the two apart only by
   * the message "Topic already registered", so that message is matched here.
   */
  async registerTopicMetrics(topic: string): Promise<RegisterTopicOutcome> {
    const response = await this.#call(
      "POST",
      "mqtt/topic_metrics",
      { body: { topic } },
      [400, 409],
    );
    if (response.status === 409) {
      expectErrorCode(response, "EXCEED_LIMIT");
      return "limit_exceeded";
    }
    if (response.status === 400) {
      const error = errorBody(response);
      if (error.code === "BAD_TOPIC" && /already registered/i.test(error.message ?? "")) {
        return "already_registered";
      }
      throw httpError(response);
    }
    return "registered";
  }

  /** Stops counting a topic. Returns `not_found` when it was not registered. */
  async deleteTopicMetrics(topic: string): Promise<"deleted" | "not_found"> {
    const response = await this.#call("DELETE", topicPath(topic), {}, [404]);
    if (response.status === 404) {
      expectErrorCode(response, "TOPIC_NOT_FOUND");
      return "not_found";
    }
    return "deleted";
  }

  /**
   * Sets the counters of one topic, or of every topic when `topic` is undefined, back to zero.
   * Returns `not_found` when the topic is not registered.
   */
  async resetTopicMetrics(topic?: string): Promise<"reset" | "not_found"> {
    const body = topic === undefined ? { action: "reset" } : { action: "reset", topic };
    const response = await this.#call("PUT", "mqtt/topic_metrics", { body }, [404]);
    if (response.status === 404) {
      expectErrorCode(response, "TOPIC_NOT_FOUND");
      return "not_found";
    }
    return "reset";
  }

  /**
   * Reads the broker's Prometheus exposition (`GET /prometheus/stats`) into named numbers.
   * EMQX serves it without authentication unless `prometheus.enable_basic_auth` is on; the
   * client sends its credentials either way.
   */
  async getPrometheusStats(mode: PrometheusMode = "node"): Promise<PrometheusStats> {
    const response = await this.#call("GET", "prometheus/stats", {
      query: { mode },
      accept: "text/plain",
    });
    try {
      return parsePrometheusStats(response.text);
    } catch (error) {
      throw new EmqxApiError({
        kind: "invalid_response",
        endpoint: response.endpoint,
        status: response.status,
        emqxMessage: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /**
   * Sends one request. A status outside 2xx throws, unless it is listed in `allowedStatuses`,
   * which lets a method turn a documented error (404, 409) into an outcome.
   */
  async #call(
    method: string,
    path: string,
    options: RequestOptions = {},
    allowedStatuses: readonly number[] = [],
  ): Promise<RawResponse> {
    const url = new URL(path, this.#apiBase);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      url.searchParams.set(name, value);
    }
    const endpoint = `${method} ${url.pathname}`;
    const headers: Record<string, string> = {
      authorization: this.#authorization,
      accept: options.accept ?? "application/json",
    };
    if (options.body !== undefined) headers["content-type"] = "application/json";

    const signal = AbortSignal.timeout(this.#timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: options.body === undefined ? null : JSON.stringify(options.body),
        signal,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      const timedOut = signal.aborted;
      throw new EmqxApiError({ kind: timedOut ? "timeout" : "network", endpoint, cause: error });
    }

    const raw = { endpoint, status, text };
    if ((status < 200 || status > 299) && !allowedStatuses.includes(status)) {
      throw httpError(raw);
    }
    return raw;
  }
}

/**
 * Builds the client from the node's configuration, or returns undefined when
 * `PU_NODE_EMQX_API_URL` is unset. Throws when the URL is set without a key and secret.
 */
export function createEmqxClientFromConfig(
  config: Pick<Config, "emqxApiUrl" | "emqxApiKey" | "emqxApiSecret">,
  options: { timeoutMs?: number } = {},
): EmqxClient | undefined {
  if (config.emqxApiUrl === undefined) return undefined;
  return new EmqxClient({
    url: config.emqxApiUrl,
    apiKey: config.emqxApiKey,
    apiSecret: config.emqxApiSecret,
    ...options,
  });
}

/** Encodes the topic as one path segment, percent-encoding `/`, `+`, `#`, spaces and non-ASCII. */
function topicPath(topic: string): string {
  return `mqtt/topic_metrics/${encodeURIComponent(topic)}`;
}

function parseJson<T>(
  response: RawResponse,
  schema: {
    safeParse(value: unknown): { success: true; data: T } | { success: false; error: Error };
  },
): T {
  let body: unknown;
  try {
    body = JSON.parse(response.text);
  } catch {
    throw invalidResponse(response, `the body is not JSON: ${excerpt(response.text)}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw invalidResponse(response, parsed.error.message);
  return parsed.data;
}

function checkedTopicMetrics(
  response: RawResponse,
  item: Parameters<typeof toTopicMetrics>[0],
): TopicMetrics {
  const metrics = toTopicMetrics(item);
  if (typeof metrics === "string") throw invalidResponse(response, metrics);
  return metrics;
}

function errorBody(response: RawResponse): { code?: string; message?: string } {
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(response.text));
    if (parsed.success) return parsed.data;
  } catch {
    // Not JSON: EMQX returns HTML for unknown paths unless the request accepts JSON.
  }
  return response.text === "" ? {} : { message: excerpt(response.text) };
}

function httpError(response: RawResponse): EmqxApiError {
  const body = errorBody(response);
  return new EmqxApiError({
    kind: "http",
    endpoint: response.endpoint,
    status: response.status,
    ...(body.code === undefined ? {} : { code: body.code }),
    ...(body.message === undefined ? {} : { emqxMessage: body.message }),
  });
}

/** Throws unless the error body of an allowed status carries `code`. */
function expectErrorCode(response: RawResponse, code: string): void {
  if (errorBody(response).code !== code) throw httpError(response);
}

function invalidResponse(response: RawResponse, detail: string): EmqxApiError {
  return new EmqxApiError({
    kind: "invalid_response",
    endpoint: response.endpoint,
    status: response.status,
    emqxMessage: detail,
  });
}

function excerpt(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
