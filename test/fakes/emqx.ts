/**
 * A fake EMQX 5.8 management API on a loopback port, for contract tests of the node's EMQX client.
 *
 * EMQX does not run on the development machines, so this fake replaces it in tests. It was written
 * from the EMQX v5.8.8 sources (`emqx_dashboard.erl` for authentication, `emqx_mgmt_api_metrics.erl`,
 * `emqx_mgmt_api_stats.erl`, `emqx_mgmt_api_nodes.erl`, `emqx_topic_metrics_api.erl` with
 * `emqx_topic_metrics.erl`, `emqx_prometheus_api.erl` and `emqx_dashboard_not_found.erl`) and
 * copies their paths, status codes, error codes, messages and body shapes. It does not model
 * clustering, the rates EMQX computes, or any endpoint outside those files.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Which spelling of topic metric keys the fake emits; EMQX's schema and its code disagree. */
export type TopicKeySpelling = "messages" | "message";

export interface FakeEmqxOptions {
  apiKey?: string;
  apiSecret?: string;
  /** The broker's cap on registered topics; EMQX 5.8 fixes it at 512. */
  topicLimit?: number;
  topicKeySpelling?: TopicKeySpelling;
  /** When true, `/prometheus/stats` needs credentials, as with `prometheus.enable_basic_auth`. */
  prometheusBasicAuth?: boolean;
}

interface TopicCounters {
  createTime: string;
  resetTime: string | undefined;
  in: number;
  out: number;
  dropped: number;
}

/** One request as the fake received it, for assertions on paths and headers. */
export interface RecordedRequest {
  method: string;
  /** The path as sent, still percent-encoded. */
  rawPath: string;
  authorization: string | undefined;
}

const TOPIC_METRIC_NAMES = [
  "in",
  "out",
  "dropped",
  "qos0.in",
  "qos0.out",
  "qos1.in",
  "qos1.out",
  "qos2.in",
  "qos2.out",
];

/** A running fake. Every field is state a test may read or change between requests. */
export class FakeEmqx {
  readonly apiKey: string;
  readonly apiSecret: string;
  topicLimit: number;
  topicKeySpelling: TopicKeySpelling;
  prometheusBasicAuth: boolean;
  /** Registered topics in registration order. */
  readonly topics = new Map<string, TopicCounters>();
  /** Global counters, as `GET /api/v5/metrics?aggregate=true` returns them. */
  readonly metrics: Record<string, number> = {
    "bytes.received": 0,
    "bytes.sent": 0,
    "messages.received": 0,
    "messages.sent": 0,
    "messages.publish": 0,
    "messages.dropped": 0,
    "messages.dropped.no_subscribers": 0,
    "packets.publish.received": 0,
    "client.connected": 0,
  };
  readonly stats: Record<string, number> = {
    "connections.count": 3,
    "connections.max": 5,
    "live_connections.count": 3,
    "live_connections.max": 5,
    "sessions.count": 3,
    "sessions.max": 5,
    "topics.count": 7,
    "topics.max": 9,
    "subscriptions.count": 4,
    "subscriptions.max": 6,
    "subscriptions.shared.count": 1,
    "subscriptions.shared.max": 1,
    "retained.count": 0,
    "retained.max": 0,
  };
  readonly nodes = [
    { node: "emqx@127.0.0.1", node_status: "running", uptime: 5_120_000, version: "5.8.8" },
  ];
  readonly requests: RecordedRequest[] = [];
  /** Milliseconds to wait before responding, for timeout tests. */
  delayMs = 0;
  /** Responses for the next requests, served in order before any route. */
  readonly scriptedResponses: { status: number; body: string }[] = [];

  readonly #server: Server;
  #url: URL | undefined;

  constructor(options: FakeEmqxOptions = {}) {
    this.apiKey = options.apiKey ?? "node-metering";
    this.apiSecret = options.apiSecret ?? "fake-secret-0123456789";
    this.topicLimit = options.topicLimit ?? 512;
    this.topicKeySpelling = options.topicKeySpelling ?? "messages";
    this.prometheusBasicAuth = options.prometheusBasicAuth ?? false;
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ code: "INTERNAL_ERROR", message: String(error) }));
      });
    });
  }

  /** Base URL of the dashboard listener, such as `http://127.0.0.1:41234`. */
  get url(): URL {
    if (this.#url === undefined) throw new Error("The fake EMQX is not started");
    return new URL(this.#url.href);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address() as AddressInfo;
    this.#url = new URL(`http://127.0.0.1:${address.port}`);
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      this.#server.close((error) => (error ? reject(error) : resolve())),
    );
  }

  /**
   * Simulates `count` messages published to `topic` with `deliveries` subscribers each: the
   * global counters always move, the topic's counters only when the topic is registered.
   */
  publish(topic: string, count: number, payloadBytes = 10, deliveries = 1): void {
    this.#add("messages.received", count);
    this.#add("messages.sent", count * deliveries);
    this.#add("bytes.received", count * payloadBytes);
    this.#add("bytes.sent", count * deliveries * payloadBytes);
    const counters = this.topics.get(topic);
    if (counters === undefined) return;
    counters.in += count;
    counters.out += count * deliveries;
    if (deliveries === 0) counters.dropped += count;
  }

  /** Simulates a broker restart: counters start again from zero and uptime from one second. */
  restart(): void {
    for (const key of Object.keys(this.metrics)) this.metrics[key] = 0;
    for (const counters of this.topics.values()) {
      counters.in = 0;
      counters.out = 0;
      counters.dropped = 0;
    }
    for (const node of this.nodes) node.uptime = 1_000;
  }

  #add(key: string, value: number): void {
    this.metrics[key] = (this.metrics[key] ?? 0) + value;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const rawUrl = request.url ?? "/";
    const url = new URL(rawUrl, "http://fake");
    const method = request.method ?? "GET";
    this.requests.push({
      method,
      rawPath: rawUrl.split("?")[0] ?? rawUrl,
      authorization: request.headers.authorization,
    });
    const body = await readBody(request);
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));

    const scripted = this.scriptedResponses.shift();
    if (scripted !== undefined) {
      response.writeHead(scripted.status, { "content-type": "application/json" });
      response.end(scripted.body);
      return;
    }

    const path = url.pathname;
    const isPrometheus = path === "/api/v5/prometheus/stats";
    if (path.startsWith("/api/v5/") && (!isPrometheus || this.prometheusBasicAuth)) {
      const denied = this.#authenticate(request.headers.authorization);
      if (denied !== undefined) {
        sendJson(response, 401, denied, {
          "www-authenticate": 'Basic Realm="emqx-dashboard"',
        });
        return;
      }
    }

    const route = `${method} ${path}`;
    if (route === "GET /api/v5/metrics") return this.#metricsRoute(url, response);
    if (route === "GET /api/v5/stats") return this.#statsRoute(url, response);
    if (route === "GET /api/v5/nodes") return sendJson(response, 200, this.nodes);
    if (isPrometheus && method === "GET") return this.#prometheusRoute(response);
    if (path === "/api/v5/mqtt/topic_metrics") {
      return this.#topicMetricsCollection(method, body, response);
    }
    const prefix = "/api/v5/mqtt/topic_metrics/";
    if (path.startsWith(prefix) && !path.slice(prefix.length).includes("/")) {
      // The path segment arrives percent-encoded; the broker decodes it into the topic name.
      const topic = decodeURIComponent(path.slice(prefix.length));
      return this.#topicMetricsItem(method, topic, response);
    }
    this.#notFound(request, response);
  }

  /** EMQX's `authorize/2`: Basic API key and secret, or a Bearer token from `/login`. */
  #authenticate(header: string | undefined): { code: string; message: string } | undefined {
    if (header?.startsWith("Basic ")) {
      const decoded = Buffer.from(header.slice("Basic ".length), "base64").toString("utf8");
      const separator = decoded.indexOf(":");
      const key = decoded.slice(0, separator);
      const secret = decoded.slice(separator + 1);
      if (separator >= 0 && key === this.apiKey && secret === this.apiSecret) return undefined;
      return { code: "BAD_API_KEY_OR_SECRET", message: "Check api_key/api_secret" };
    }
    if (header?.startsWith("Bearer ")) {
      return { code: "BAD_TOKEN", message: "Get a token by POST /login" };
    }
    return { code: "AUTHORIZATION_HEADER_ERROR", message: "Support authorization: basic/bearer " };
  }

  #metricsRoute(url: URL, response: ServerResponse): void {
    // EMQX 5.8.8 aggregates only when asked; without the parameter it lists nodes.
    if (url.searchParams.get("aggregate") === "true") {
      sendJson(response, 200, this.metrics);
      return;
    }
    sendJson(response, 200, [{ node: this.nodes[0]?.node, ...this.metrics }]);
  }

  #statsRoute(url: URL, response: ServerResponse): void {
    if (url.searchParams.get("aggregate") === "true") {
      sendJson(response, 200, this.stats);
      return;
    }
    sendJson(response, 200, [
      { node: this.nodes[0]?.node, "durable_subscriptions.count": 0, ...this.stats },
    ]);
  }

  #prometheusRoute(response: ServerResponse): void {
    const lines: string[] = [];
    const series: [string, string, number][] = [
      ["emqx_messages_received", "counter", this.metrics["messages.received"] ?? 0],
      ["emqx_messages_sent", "counter", this.metrics["messages.sent"] ?? 0],
      ["emqx_messages_dropped", "counter", this.metrics["messages.dropped"] ?? 0],
      ["emqx_bytes_received", "counter", this.metrics["bytes.received"] ?? 0],
      ["emqx_bytes_sent", "counter", this.metrics["bytes.sent"] ?? 0],
      ["emqx_connections_count", "gauge", this.stats["connections.count"] ?? 0],
      ["emqx_live_connections_count", "gauge", this.stats["live_connections.count"] ?? 0],
      ["emqx_topics_count", "gauge", this.stats["topics.count"] ?? 0],
      ["emqx_subscriptions_count", "gauge", this.stats["subscriptions.count"] ?? 0],
    ];
    for (const [name, type, value] of series) {
      lines.push(`# TYPE ${name} ${type}`, `# HELP ${name} `, `${name} ${value}`);
    }
    lines.push(
      "# TYPE emqx_vm_cpu_use gauge",
      `emqx_vm_cpu_use{node="${this.nodes[0]?.node}"} 12.5`,
      "# TYPE emqx_cluster_nodes_running gauge",
      `emqx_cluster_nodes_running ${this.nodes.filter((node) => node.node_status === "running").length}`,
    );
    response.writeHead(200, { "content-type": "text/plain" });
    response.end(`${lines.join("\n")}\n`);
  }

  #topicMetricsCollection(method: string, body: unknown, response: ServerResponse): void {
    if (method === "GET") {
      sendJson(
        response,
        200,
        [...this.topics.keys()].map((topic) => this.#format(topic)),
      );
      return;
    }
    const fields =
      typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
    if (method === "POST") {
      if (typeof fields.topic !== "string") {
        sendJson(response, 400, { code: "BAD_REQUEST", message: "topic: required field" });
        return;
      }
      this.#register(fields.topic, response);
      return;
    }
    if (method === "PUT") {
      if (fields.action !== "reset") {
        sendJson(response, 400, { code: "BAD_REQUEST", message: "action: not in enum [reset]" });
        return;
      }
      const now = new Date().toISOString();
      if (typeof fields.topic === "string") {
        const counters = this.topics.get(fields.topic);
        if (counters === undefined) {
          sendJson(response, 404, { code: "TOPIC_NOT_FOUND", message: "Topic not found" });
          return;
        }
        Object.assign(counters, { in: 0, out: 0, dropped: 0, resetTime: now });
        sendJson(response, 200, this.#format(fields.topic));
        return;
      }
      for (const counters of this.topics.values()) {
        Object.assign(counters, { in: 0, out: 0, dropped: 0, resetTime: now });
      }
      sendJson(
        response,
        200,
        [...this.topics.keys()].map((topic) => this.#format(topic)),
      );
      return;
    }
    sendJson(response, 405, { code: "METHOD_NOT_ALLOWED", message: "Method not allowed" });
  }

  /** The checks of `topic_metrics(post, ...)` and `do_register/2`, in EMQX's order. */
  #register(topic: string, response: ServerResponse): void {
    if (topic === "") {
      sendJson(response, 400, { code: "BAD_REQUEST", message: "Topic can not be empty" });
      return;
    }
    if (this.topics.has(topic)) {
      sendJson(response, 400, { code: "BAD_TOPIC", message: "Topic already registered" });
      return;
    }
    if (isWildcard(topic)) {
      sendJson(response, 400, { code: "BAD_TOPIC", message: "Wildcard topic is not supported" });
      return;
    }
    if (this.topics.size >= this.topicLimit) {
      sendJson(response, 409, {
        code: "EXCEED_LIMIT",
        message: `Max topic metrics count is ${this.topicLimit}`,
      });
      return;
    }
    const createTime = new Date().toISOString();
    this.topics.set(topic, { createTime, resetTime: undefined, in: 0, out: 0, dropped: 0 });
    // The schema documents 204, but the handler returns 200 with the new topic's metrics.
    sendJson(response, 200, this.#format(topic));
  }

  #topicMetricsItem(method: string, topic: string, response: ServerResponse): void {
    if (!this.topics.has(topic)) {
      sendJson(response, 404, { code: "TOPIC_NOT_FOUND", message: "Topic not found" });
      return;
    }
    if (method === "GET") {
      sendJson(response, 200, this.#format(topic));
      return;
    }
    if (method === "DELETE") {
      this.topics.delete(topic);
      response.writeHead(204);
      response.end();
      return;
    }
    sendJson(response, 405, { code: "METHOD_NOT_ALLOWED", message: "Method not allowed" });
  }

  #format(topic: string): unknown {
    const counters = this.topics.get(topic);
    if (counters === undefined) throw new Error(`Topic ${topic} is not registered`);
    const prefix = this.topicKeySpelling;
    const metrics: Record<string, number> = {};
    for (const name of TOPIC_METRIC_NAMES) {
      let count = 0;
      if (name === "in" || name === "qos0.in") count = counters.in;
      if (name === "out" || name === "qos0.out") count = counters.out;
      if (name === "dropped") count = counters.dropped;
      metrics[`${prefix}.${name}.count`] = count;
      metrics[`${prefix}.${name}.rate`] = 0;
    }
    const item: Record<string, unknown> = {
      topic,
      create_time: counters.createTime,
      metrics,
    };
    if (counters.resetTime !== undefined) item.reset_time = counters.resetTime;
    return item;
  }

  /** `emqx_dashboard_not_found`: the body depends on the request's Accept header. */
  #notFound(request: IncomingMessage, response: ServerResponse): void {
    const accept = request.headers.accept ?? "";
    if (accept.startsWith("application/json")) {
      sendJson(response, 404, { code: "NOT_FOUND", message: "Request Path Not Found" });
      return;
    }
    response.writeHead(404, { "content-type": "text/html" });
    response.end(
      "<html><head><title>404 - NOT FOUND</title></head><body><h1>404 - NOT FOUND</h1></body></html>",
    );
  }
}

/** Starts a fake on a free loopback port. */
export async function startFakeEmqx(options: FakeEmqxOptions = {}): Promise<FakeEmqx> {
  const fake = new FakeEmqx(options);
  await fake.start();
  return fake;
}

/** `emqx_topic:wildcard/1`: a `+` or `#` level makes a topic filter, not a topic name. */
function isWildcard(topic: string): boolean {
  return topic.split("/").some((level) => level === "+" || level === "#");
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
