/**
 * Shapes of EMQX 5.8 management API responses, checked with zod so that a broker of another
 * version fails with a clear error instead of feeding wrong numbers into metering. The shapes
 * follow the EMQX v5.8.8 sources: `emqx_mgmt_api_metrics.erl`, `emqx_mgmt_api_stats.erl`,
 * `emqx_mgmt_api_nodes.erl` and `emqx_topic_metrics_api.erl`.
 */
import { z } from "zod";

/** EMQX's error body, `{"code": "BAD_TOPIC", "message": "..."}`. */
export const errorBodySchema = z.object({
  code: z.string().optional(),
  message: z.string().optional(),
});

const counterMap = z.record(z.string(), z.number());

/**
 * `GET /metrics` and `GET /stats`: one object with `?aggregate=true`, otherwise one object per
 * node with a `node` name. EMQX 5.8.8 returns the per-node array when `aggregate` is absent,
 * although the parameter's description gives `true` as the default.
 */
export const countersResponseSchema = z.union([
  counterMap,
  z.array(z.record(z.string(), z.union([z.number(), z.string()]))),
]);

/** The per-node form of `GET /metrics`, each entry named by its `node`. */
export const perNodeCountersSchema = z.array(
  z.object({ node: z.string() }).catchall(z.union([z.number(), z.string()])),
);

/** Sums the per-node form of `/metrics` or `/stats` into one map, or returns the aggregate. */
export function sumCounters(body: z.infer<typeof countersResponseSchema>): Record<string, number> {
  if (!Array.isArray(body)) return { ...body };
  const sums: Record<string, number> = {};
  for (const node of body) {
    for (const [key, value] of Object.entries(node)) {
      if (typeof value !== "number") continue;
      sums[key] = (sums[key] ?? 0) + value;
    }
  }
  return sums;
}

export const nodesResponseSchema = z.array(
  z.object({
    node: z.string(),
    node_status: z.string(),
    /** Milliseconds since the node started. */
    uptime: z.number().nonnegative(),
    version: z.string().optional(),
  }),
);

/** One cluster node as `GET /nodes` lists it. */
export interface EmqxNode {
  node: string;
  /** `running` or `stopped`. */
  status: string;
  uptimeMs: number;
  version: string | undefined;
}

export const topicMetricsSchema = z.object({
  topic: z.string(),
  create_time: z.string(),
  reset_time: z.string().optional(),
  metrics: counterMap,
});

/** Metrics of one registered topic, with counter names in the `messages.` spelling. */
export interface TopicMetrics {
  topic: string;
  /** RFC 3339 time at which the topic was registered. */
  createTime: string;
  /** RFC 3339 time of the last reset, when the counters were reset since registration. */
  resetTime: string | undefined;
  /** Messages published to the topic since registration or the last reset. */
  messagesIn: number;
  /** Messages delivered to subscribers of the topic. */
  messagesOut: number;
  messagesDropped: number;
  /** Every counter and rate EMQX returned, for example `messages.qos1.in.count`. */
  metrics: Record<string, number>;
}

/**
 * Converts one topic-metrics item. The API schema of EMQX 5.8 documents the keys as
 * `message.in.count`, while the code that builds the response emits `messages.in.count`. Both
 * spellings are accepted and stored as `messages.*`. Returns an error text when a required
 * counter is missing.
 */
export function toTopicMetrics(item: z.infer<typeof topicMetricsSchema>): TopicMetrics | string {
  const metrics: Record<string, number> = {};
  for (const [key, value] of Object.entries(item.metrics)) {
    const name = key.startsWith("message.") ? `messages.${key.slice("message.".length)}` : key;
    metrics[name] = value;
  }
  const messagesIn = metrics["messages.in.count"];
  const messagesOut = metrics["messages.out.count"];
  if (messagesIn === undefined || messagesOut === undefined) {
    return `topic ${JSON.stringify(item.topic)} has no messages.in.count or messages.out.count`;
  }
  return {
    topic: item.topic,
    createTime: item.create_time,
    resetTime: item.reset_time,
    messagesIn,
    messagesOut,
    messagesDropped: metrics["messages.dropped.count"] ?? 0,
    metrics,
  };
}
