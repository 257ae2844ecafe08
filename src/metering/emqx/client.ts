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
  nodesResponseSchema,
  perNodeCountersSchema,
  sumCounters,
  type TopicMetrics,
  topicMetricsSchema,
  toTopicMetrics,
} from "./responses.ts";
import {
  type EmqxClientOptions,
  type EmqxRawResponse,
  type EmqxRequestOptions,
  EmqxTransport,
  emqxErrorBody,
  emqxHttpError,
  expectEmqxErrorCode,
  invalidEmqxResponse,
  parseEmqxJson,
} from "./transport.ts";

export type { EmqxNode, TopicMetrics } from "./responses.ts";
export type { EmqxClientOptions } from "./transport.ts";

/** The fixed number of topics EMQX 5.8 can hold in topic metrics (`MAX_TOPICS` in the broker). */
export const EMQX_TOPIC_METRICS_LIMIT = 512;

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

/** A client for one EMQX cluster. Methods throw {@link EmqxApiError} on every failure. */
export class EmqxClient {
  readonly #transport: EmqxTransport;

  constructor(options: EmqxClientOptions) {
    this.#transport = new EmqxTransport(options);
  }

  /** The API root, such as `http://127.0.0.1:18083/api/v5/`; it never contains credentials. */
  get apiBase(): URL {
    return this.#transport.apiBase;
  }

  /** Global counters summed over all nodes (`GET /metrics?aggregate=true`). */
  async getMetrics(): Promise<Record<string, number>> {
    const response = await this.#call("GET", "metrics", { query: { aggregate: "true" } });
    return sumCounters(parseEmqxJson(response, countersResponseSchema));
  }

  /**
   * Global counters of each node, by node name (`GET /metrics?aggregate=false`). Deltas per
   * node stay exact when one node of a cluster restarts, which a cluster-wide sum does not.
   */
  async getMetricsByNode(): Promise<Map<string, Record<string, number>>> {
    const response = await this.#call("GET", "metrics", { query: { aggregate: "false" } });
    const byNode = new Map<string, Record<string, number>>();
    for (const entry of parseEmqxJson(response, perNodeCountersSchema)) {
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
    return sumCounters(parseEmqxJson(response, countersResponseSchema));
  }

  /** Lists the cluster's nodes with their status and uptime (`GET /nodes`). */
  async listNodes(): Promise<EmqxNode[]> {
    const response = await this.#call("GET", "nodes");
    return parseEmqxJson(response, nodesResponseSchema).map((node) => ({
      node: node.node,
      status: node.node_status,
      uptimeMs: node.uptime,
      version: node.version,
    }));
  }

  /** Lists every registered topic with its metrics, summed over the cluster. */
  async listTopicMetrics(): Promise<TopicMetrics[]> {
    const response = await this.#call("GET", "mqtt/topic_metrics");
    return parseEmqxJson(response, topicMetricsSchema.array()).map((item) =>
      checkedTopicMetrics(response, item),
    );
  }

  /** Metrics of one topic, or undefined when it is not registered (`404 TOPIC_NOT_FOUND`). */
  async getTopicMetrics(topic: string): Promise<TopicMetrics | undefined> {
    const response = await this.#call("GET", topicPath(topic), {}, [404]);
    if (response.status === 404) {
      expectEmqxErrorCode(response, "TOPIC_NOT_FOUND");
      return undefined;
    }
    return checkedTopicMetrics(response, parseEmqxJson(response, topicMetricsSchema));
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
      expectEmqxErrorCode(response, "EXCEED_LIMIT");
      return "limit_exceeded";
    }
    if (response.status === 400) {
      const error = emqxErrorBody(response);
      if (error.code === "BAD_TOPIC" && /already registered/i.test(error.message ?? "")) {
        return "already_registered";
      }
      throw emqxHttpError(response);
    }
    return "registered";
  }

  /** Stops counting a topic. Returns `not_found` when it was not registered. */
  async deleteTopicMetrics(topic: string): Promise<"deleted" | "not_found"> {
    const response = await this.#call("DELETE", topicPath(topic), {}, [404]);
    if (response.status === 404) {
      expectEmqxErrorCode(response, "TOPIC_NOT_FOUND");
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
      expectEmqxErrorCode(response, "TOPIC_NOT_FOUND");
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
  #call(
    method: string,
    path: string,
    options: EmqxRequestOptions = {},
    allowedStatuses: readonly number[] = [],
  ): Promise<EmqxRawResponse> {
    return this.#transport.request(method, path, options, allowedStatuses);
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

function checkedTopicMetrics(
  response: EmqxRawResponse,
  item: Parameters<typeof toTopicMetrics>[0],
): TopicMetrics {
  const metrics = toTopicMetrics(item);
  if (typeof metrics === "string") throw invalidEmqxResponse(response, metrics);
  return metrics;
}
