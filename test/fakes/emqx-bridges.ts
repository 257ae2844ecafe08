/**
 * A fake of the EMQX 5.8 REST API v5 for bridges, on a loopback port, for contract tests of the
 * EMQX bridge driver: connectors, sources, actions, rules, the built-in database authenticator's
 * users and the built-in database authorization rules per username. The billing tests also use
 * its authorization rules for all clients (`rules/all`).
 *
 * It follows the EMQX v5.8.8 sources: `emqx_connector_api.erl`, `emqx_bridge_v2_api.erl` and
 * `emqx_bridge_v2.erl` (dependency checks), `emqx_resource:validate_name/2`,
 * `emqx_bridge_mqtt_connector_schema.erl` and `emqx_bridge_mqtt_pubsub_schema.erl` (MQTT
 * fields), `emqx_rule_engine_api.erl` with `emqx_rule_engine_schema.erl`, `emqx_authn_api.erl`,
 * `emqx_authz_api_sources.erl`, `emqx_authz_api_mnesia.erl` and `emqx_mgmt_api.erl`
 * (pagination). It copies their paths, methods, required fields, status codes, error codes and
 * the `{code, message}` error body. Messages of schema validation errors are shortened: EMQX
 * prints the whole hocon error, the fake only its kind, path and reason.
 *
 * The removed `/api/v5/bridges` API returns 404 here, so a driver that falls back to it fails.
 * The fake does not model clustering, resource status, metrics, SQL beyond `SELECT ... FROM`
 * with quoted topics, or any other endpoint.
 *
 * NOTE: the bridge driver was not run against a live EMQX; this fake is the only broker it met.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const AUTHENTICATOR_ID = "password_based:built_in_database";
export const AUTHZ_SOURCE_TYPE = "built_in_database";
const NODE_NAME = "emqx@127.0.0.1";
const MAX_ROW_LIMIT = 10_000;
const DEFAULT_ROW_LIMIT = 100;

/** A connector, source or action: its type, name and stored config, defaults filled in. */
export interface FakeResource {
  type: string;
  name: string;
  config: Record<string, unknown>;
}

export interface FakeRule {
  id: string;
  config: Record<string, unknown>;
  from: string[];
  createdAt: string;
  updatedAt: string;
}

export interface FakeAuthzRule {
  topic: string;
  permission: string;
  action: string;
}

/** One request as the fake received it. */
export interface FakeRequest {
  method: string;
  /** The path, percent-decoded, without the query. */
  path: string;
  query: URLSearchParams;
  body: unknown;
}

export interface FakeEmqxBridgesOptions {
  apiKey?: string;
  apiSecret?: string;
  /** Whether the built-in database authenticator exists; true when unset. */
  authenticator?: boolean;
  /** Whether the built-in database authorization source exists; true when unset. */
  authzSource?: boolean;
}

interface Reply {
  status: number;
  body?: unknown;
}

const CONNECTOR_FIELDS = new Set([
  "enable",
  "description",
  "tags",
  "server",
  "clientid_prefix",
  "static_clientids",
  "proto_ver",
  "bridge_mode",
  "username",
  "password",
  "clean_start",
  "keepalive",
  "connect_timeout",
  "retry_interval",
  "max_inflight",
  "ssl",
  "pool_size",
  "resource_opts",
]);
const CHANNEL_FIELDS = new Set([
  "enable",
  "description",
  "tags",
  "connector",
  "parameters",
  "resource_opts",
]);
const SOURCE_PARAMETERS = new Set(["topic", "qos", "no_local", "local"]);
const ACTION_PARAMETERS = new Set(["topic", "qos", "retain", "payload", "local"]);
const RULE_FIELDS = new Set(["id", "name", "sql", "actions", "enable", "description", "metadata"]);
const NAME_PATTERN = /^[0-9a-zA-Z][-0-9a-zA-Z_]*$/;

/** A running fake. Every field is state a test may read or change between requests. */
export class FakeEmqxBridges {
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Connectors by `type:name`. */
  readonly connectors = new Map<string, FakeResource>();
  /** Sources by `type:name`. */
  readonly sources = new Map<string, FakeResource>();
  /** Actions by `type:name`. */
  readonly actions = new Map<string, FakeResource>();
  readonly rules = new Map<string, FakeRule>();
  /** The built-in database authenticator, or undefined when it does not exist. */
  authenticator: { enable: boolean } | undefined;
  readonly users = new Map<string, { password: string; isSuperuser: boolean }>();
  /** Authorization sources in the order EMQX checks them. */
  authzSources: { type: string; enable: boolean; max_rules?: number }[];
  readonly userRules = new Map<string, FakeAuthzRule[]>();
  /** The built-in database rules for all clients (`rules/all`), in the order EMQX checks them. */
  allRules: FakeAuthzRule[] = [];
  readonly requests: FakeRequest[] = [];
  /** Responses for the next requests, served in order before any route. */
  readonly scriptedResponses: { status: number; body: string }[] = [];

  readonly #server: Server;
  #url: URL | undefined;

  constructor(options: FakeEmqxBridgesOptions = {}) {
    this.apiKey = options.apiKey ?? "node-bridges";
    this.apiSecret = options.apiSecret ?? "fake-bridges-secret-0123";
    this.authenticator = options.authenticator === false ? undefined : { enable: true };
    this.authzSources = [
      ...(options.authzSource === false
        ? []
        : [{ type: AUTHZ_SOURCE_TYPE, enable: true, max_rules: 100 }]),
      { type: "file", enable: true },
    ];
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

  /** The requests that change state (every method but GET). */
  get writes(): FakeRequest[] {
    return this.requests.filter((request) => request.method !== "GET");
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

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake");
    const method = request.method ?? "GET";
    const body = await readBody(request);
    const path = url.pathname.split("/").map(decodeURIComponent).join("/");
    this.requests.push({ method, path, query: url.searchParams, body });

    const scripted = this.scriptedResponses.shift();
    if (scripted !== undefined) {
      response.writeHead(scripted.status, { "content-type": "application/json" });
      response.end(scripted.body);
      return;
    }
    if (path.startsWith("/api/v5/")) {
      const denied = this.#authenticate(request.headers.authorization);
      if (denied !== undefined) {
        sendJson(response, { status: 401, body: denied });
        return;
      }
    }

    const segments = url.pathname
      .replace(/^\/api\/v5\//, "")
      .split("/")
      .map(decodeURIComponent);
    const reply = path.startsWith("/api/v5/")
      ? this.#route(method, segments, url.searchParams, body)
      : undefined;
    if (reply === undefined) {
      notFound(request, response);
      return;
    }
    sendJson(response, reply);
  }

  /** EMQX's `authorize/2` for API keys: HTTP Basic with the key and secret. */
  #authenticate(header: string | undefined): { code: string; message: string } | undefined {
    if (header?.startsWith("Basic ")) {
      const decoded = Buffer.from(header.slice("Basic ".length), "base64").toString("utf8");
      const separator = decoded.indexOf(":");
      if (
        separator >= 0 &&
        decoded.slice(0, separator) === this.apiKey &&
        decoded.slice(separator + 1) === this.apiSecret
      ) {
        return undefined;
      }
      return { code: "BAD_API_KEY_OR_SECRET", message: "Check api_key/api_secret" };
    }
    return { code: "AUTHORIZATION_HEADER_ERROR", message: "Support authorization: basic/bearer " };
  }

  #route(
    method: string,
    segments: string[],
    query: URLSearchParams,
    body: unknown,
  ): Reply | undefined {
    const [first, second, third, fourth, fifth, sixth] = segments;
    // The v1 bridges API: absent here on purpose, so the driver cannot regress to it.
    if (first === "bridges") return undefined;
    if (first === "connectors" && segments.length === 1) return this.#connectors(method, body);
    if (first === "connectors" && segments.length === 2 && second !== undefined) {
      return this.#connector(method, second, body);
    }
    if ((first === "sources" || first === "actions") && segments.length === 1) {
      return this.#channels(first, method, body);
    }
    if ((first === "sources" || first === "actions") && segments.length === 2 && second) {
      return this.#channel(first, method, second, body);
    }
    if (first === "rules" && segments.length === 1) return this.#rulesRoute(method, query, body);
    if (first === "rules" && segments.length === 2 && second !== undefined) {
      return this.#rule(method, second, body);
    }
    if (first === "authentication" && second !== undefined) {
      if (segments.length === 2 && method === "GET") return this.#authenticatorRoute(second);
      if (segments.length === 3 && third === "users") return this.#usersRoute(method, query, body);
      if (segments.length === 4 && third === "users" && fourth !== undefined) {
        return this.#user(method, fourth, body);
      }
      return undefined;
    }
    if (first === "authorization" && second === "sources") {
      if (segments.length === 2 && method === "GET") {
        return { status: 200, body: { sources: this.authzSources } };
      }
      if (segments.length === 3 && third !== undefined && method === "GET") {
        const source = this.authzSources.find((candidate) => candidate.type === third);
        return source === undefined
          ? { status: 404, body: { code: "NOT_FOUND", message: `Not found: ${third}` } }
          : { status: 200, body: source };
      }
      if (third === AUTHZ_SOURCE_TYPE && fourth === "rules" && fifth === "users") {
        // `is_configured_authz_source/2` filters every rules path.
        if (this.#authzSource() === undefined) {
          return {
            status: 404,
            body: { code: "NOT_FOUND", message: `Not found: ${AUTHZ_SOURCE_TYPE}` },
          };
        }
        if (segments.length === 5) return this.#userRulesRoute(method, query, body);
        if (segments.length === 6 && sixth !== undefined) {
          return this.#userRuleSet(method, sixth, body);
        }
      }
      if (third === AUTHZ_SOURCE_TYPE && fourth === "rules" && fifth === "all") {
        if (this.#authzSource() === undefined) {
          return {
            status: 404,
            body: { code: "NOT_FOUND", message: `Not found: ${AUTHZ_SOURCE_TYPE}` },
          };
        }
        if (segments.length === 5) return this.#allRulesRoute(method, body);
      }
    }
    return undefined;
  }

  // Connectors: `emqx_connector_api.erl`.

  #connectors(method: string, body: unknown): Reply {
    if (method === "GET") {
      return {
        status: 200,
        body: [...this.connectors.values()].map((item) => this.#formatConnector(item)),
      };
    }
    if (method !== "POST") return methodNotAllowed();
    const fields = asRecord(body);
    if (typeof fields?.type !== "string" || typeof fields.name !== "string") {
      return validationError("type or name", "required_field");
    }
    const key = `${fields.type}:${fields.name}`;
    if (this.connectors.has(key)) return badRequest("connector already exists", "ALREADY_EXISTS");
    const { type, name, ...config } = fields;
    const invalid = checkResourceName(name) ?? this.#checkConnectorConfig(type, config, true);
    if (invalid !== undefined) return invalid;
    const stored: FakeResource = { type, name, config: connectorDefaults(name, config) };
    this.connectors.set(key, stored);
    return { status: 201, body: this.#formatConnector(stored) };
  }

  #connector(method: string, id: string, body: unknown): Reply {
    const parsed = parseResourceId(id);
    if (parsed === undefined) {
      return notFoundError(`Invalid connector ID, ${JSON.stringify(id)} is not type:name`);
    }
    const existing = this.connectors.get(id);
    const missing = notFoundError(
      `Connector lookup failed: connector named '${parsed.name}' of type ${parsed.type} does not exist.`,
    );
    if (method === "GET") {
      return existing === undefined
        ? missing
        : { status: 200, body: this.#formatConnector(existing) };
    }
    if (existing === undefined)
      return method === "PUT" || method === "DELETE" ? missing : methodNotAllowed();
    if (method === "PUT") {
      const config = withoutIdentity(asRecord(body) ?? {});
      const invalid = this.#checkConnectorConfig(existing.type, config, true);
      if (invalid !== undefined) return invalid;
      // `emqx_utils:deobfuscate/2`: a masked secret keeps its stored value.
      if (config.password === "******") config.password = existing.config.password;
      existing.config = connectorDefaults(existing.name, config);
      return { status: 200, body: this.#formatConnector(existing) };
    }
    if (method === "DELETE") {
      const channels = this.#channelsOf(existing.name);
      if (channels.length > 0) {
        return badRequest(
          `Cannot delete connector while there are active channels defined for this connector: ${channels.join(", ")}`,
        );
      }
      this.connectors.delete(id);
      return { status: 204 };
    }
    return methodNotAllowed();
  }

  #checkConnectorConfig(
    type: string,
    config: Record<string, unknown>,
    serverRequired: boolean,
  ): Reply | undefined {
    if (type !== "mqtt") return validationError("type", `unknown connector type ${type}`);
    const unknown = Object.keys(config).find((key) => !CONNECTOR_FIELDS.has(key));
    if (unknown !== undefined) return validationError(unknown, "unknown_fields");
    if (serverRequired && (typeof config.server !== "string" || config.server === "")) {
      return validationError("server", "required_field");
    }
    if (config.proto_ver !== undefined && !["v3", "v4", "v5"].includes(String(config.proto_ver))) {
      return validationError("proto_ver", "unable_to_convert_to_enum_symbol");
    }
    if (
      config.pool_size !== undefined &&
      !(Number.isInteger(config.pool_size) && (config.pool_size as number) > 0)
    ) {
      return validationError("pool_size", "not a positive integer");
    }
    if (config.ssl !== undefined && asRecord(config.ssl) === undefined) {
      return validationError("ssl", "not an object");
    }
    return undefined;
  }

  #formatConnector(item: FakeResource): Record<string, unknown> {
    const channels = (map: Map<string, FakeResource>) =>
      [...map.values()]
        .filter((channel) => channel.config.connector === item.name && channel.type === item.type)
        .map((channel) => channel.name)
        .sort();
    return {
      ...redact(item.config),
      type: item.type,
      name: item.name,
      status: "connected",
      node_status: [{ node: NODE_NAME, status: "connected" }],
      actions: channels(this.actions),
      sources: channels(this.sources),
    };
  }

  #channelsOf(connectorName: string): string[] {
    return [...this.sources.values(), ...this.actions.values()]
      .filter((channel) => channel.config.connector === connectorName)
      .map((channel) => `${channel.type}:${channel.name}`);
  }

  // Sources and actions: `emqx_bridge_v2_api.erl`.

  #channels(kind: "sources" | "actions", method: string, body: unknown): Reply {
    const store = this[kind];
    if (method === "GET") {
      return {
        status: 200,
        body: [...store.values()].map((item) => this.#formatChannel(kind, item)),
      };
    }
    if (method !== "POST") return methodNotAllowed();
    const fields = asRecord(body);
    if (typeof fields?.type !== "string" || typeof fields.name !== "string") {
      return validationError("type or name", "required_field");
    }
    const key = `${fields.type}:${fields.name}`;
    if (store.has(key)) return badRequest("bridge already exists", "ALREADY_EXISTS");
    const { type, name, ...config } = fields;
    const invalid = checkResourceName(name) ?? this.#checkChannelConfig(kind, type, name, config);
    if (invalid !== undefined) return invalid;
    const stored: FakeResource = { type, name, config: channelDefaults(kind, config) };
    store.set(key, stored);
    return { status: 201, body: this.#formatChannel(kind, stored) };
  }

  #channel(kind: "sources" | "actions", method: string, id: string, body: unknown): Reply {
    const store = this[kind];
    const parsed = parseResourceId(id);
    if (parsed === undefined) {
      return notFoundError(`Invalid bridge ID, ${JSON.stringify(id)} is not type:name`);
    }
    const existing = store.get(id);
    if (existing === undefined) {
      return method === "GET" || method === "PUT" || method === "DELETE"
        ? notFoundError(
            `Bridge lookup failed: bridge named '${parsed.name}' of type ${parsed.type} does not exist.`,
          )
        : methodNotAllowed();
    }
    if (method === "GET") return { status: 200, body: this.#formatChannel(kind, existing) };
    if (method === "PUT") {
      const config = withoutIdentity(asRecord(body) ?? {});
      const invalid = this.#checkChannelConfig(kind, existing.type, existing.name, config);
      if (invalid !== undefined) return invalid;
      existing.config = channelDefaults(kind, config);
      return { status: 200, body: this.#formatChannel(kind, existing) };
    }
    if (method === "DELETE") {
      const rules = this.#rulesUsing(kind, id);
      if (rules.length > 0) {
        return {
          status: 400,
          body: {
            code: "BAD_REQUEST",
            message: "Cannot delete action while active rules are depending on it",
            rules,
          },
        };
      }
      store.delete(id);
      return { status: 204 };
    }
    return methodNotAllowed();
  }

  #checkChannelConfig(
    kind: "sources" | "actions",
    type: string,
    name: string,
    config: Record<string, unknown>,
  ): Reply | undefined {
    if (type !== "mqtt") return validationError("type", `unknown ${kind} type ${type}`);
    const unknown = Object.keys(config).find((key) => !CHANNEL_FIELDS.has(key));
    if (unknown !== undefined) return validationError(unknown, "unknown_fields");
    if (typeof config.connector !== "string") {
      return validationError("connector", "required_field");
    }
    const parameters = asRecord(config.parameters);
    if (parameters === undefined) return validationError("parameters", "required_field");
    const allowed = kind === "sources" ? SOURCE_PARAMETERS : ACTION_PARAMETERS;
    const unknownParameter = Object.keys(parameters).find((key) => !allowed.has(key));
    if (unknownParameter !== undefined) {
      return validationError(`parameters.${unknownParameter}`, "unknown_fields");
    }
    if (typeof parameters.topic !== "string" || parameters.topic === "") {
      return validationError("parameters.topic", "required_field");
    }
    const qos = parameters.qos;
    const qosIsTemplate = kind === "actions" && typeof qos === "string" && qos.startsWith("$");
    if (qos !== undefined && !qosIsTemplate && qos !== 0 && qos !== 1 && qos !== 2) {
      return validationError("parameters.qos", "not a QoS");
    }
    const connector = this.connectors.get(`${type}:${config.connector}`);
    if (connector === undefined) {
      // `emqx_bridge_v2`: the pre-config-update check, returned as JSON text.
      return badRequest(
        JSON.stringify({
          bridge_name: name,
          bridge_type: type,
          connector_name: config.connector,
          reason: "connector_not_found_or_wrong_type",
        }),
      );
    }
    return undefined;
  }

  #formatChannel(kind: "sources" | "actions", item: FakeResource): Record<string, unknown> {
    return {
      ...item.config,
      type: item.type,
      name: item.name,
      status: "connected",
      node_status: [{ node: NODE_NAME, status: "connected" }],
      rules: this.#rulesUsing(kind, `${item.type}:${item.name}`),
    };
  }

  #rulesUsing(kind: "sources" | "actions", id: string): string[] {
    return [...this.rules.values()]
      .filter((rule) =>
        kind === "sources"
          ? rule.from.includes(`$bridges/${id}`) || rule.from.includes(`$sources/${id}`)
          : ((rule.config.actions as unknown[]) ?? []).includes(id),
      )
      .map((rule) => rule.id)
      .sort();
  }

  // Rules: `emqx_rule_engine_api.erl`.

  #rulesRoute(method: string, query: URLSearchParams, body: unknown): Reply {
    if (method === "GET") {
      const likeId = query.get("like_id");
      const items = [...this.rules.values()]
        .filter((rule) => likeId === null || rule.id.includes(likeId))
        .map((rule) => formatRule(rule));
      return paginate(items, query);
    }
    if (method !== "POST") return methodNotAllowed();
    const fields = asRecord(body) ?? {};
    const id = fields.id === undefined ? randomBytes(4).toString("hex") : fields.id;
    if (id === "") return badRequest("empty rule id is not allowed");
    if (typeof id !== "string") return badRequest("rule id must be a string");
    if (this.rules.has(id)) return badRequest("rule id already exists");
    return this.#storeRule(id, withoutRuleStatus(fields), 201);
  }

  #rule(method: string, id: string, body: unknown): Reply {
    const existing = this.rules.get(id);
    const missing = { status: 404, body: { code: "NOT_FOUND", message: "Rule Id Not Found" } };
    if (method === "GET") {
      return existing === undefined ? missing : { status: 200, body: formatRule(existing) };
    }
    // `emqx_conf:update/3` creates the rule when the id is new, so PUT never answers 404.
    if (method === "PUT") return this.#storeRule(id, withoutRuleStatus(asRecord(body) ?? {}), 200);
    if (method === "DELETE") {
      if (existing === undefined) return missing;
      this.rules.delete(id);
      return { status: 204 };
    }
    return methodNotAllowed();
  }

  #storeRule(id: string, fields: Record<string, unknown>, status: number): Reply {
    const unknown = Object.keys(fields).find((key) => !RULE_FIELDS.has(key));
    if (unknown !== undefined) return validationError(unknown, "unknown_fields");
    if (typeof fields.sql !== "string") return validationError("sql", "required_field");
    const from = parseSqlFrom(fields.sql);
    if (from === undefined) {
      return badRequest(`{select_and_transform_error, invalid SQL: ${fields.sql}}`);
    }
    const actions = fields.actions ?? [];
    if (!Array.isArray(actions)) return validationError("actions", "not an array");
    const normalized: unknown[] = [];
    for (const action of actions) {
      if (typeof action === "string") {
        if (parseResourceId(action) === undefined) {
          return validationError("actions", `invalid action id ${action}`);
        }
        normalized.push(action);
        continue;
      }
      const record = asRecord(action);
      if (record?.function === "republish") {
        const args = asRecord(record.args);
        if (typeof args?.topic !== "string") {
          return validationError("actions.args.topic", "required_field");
        }
        normalized.push({
          function: "republish",
          args: {
            qos: `\${qos}`,
            retain: `\${retain}`,
            payload: `\${payload}`,
            mqtt_properties: {},
            user_properties: `\${user_properties}`,
            direct_dispatch: false,
            ...args,
          },
        });
        continue;
      }
      if (record?.function === "console") {
        normalized.push({ function: "console", args: {} });
        continue;
      }
      return validationError("actions", "unknown action");
    }
    const now = new Date().toISOString();
    const previous = this.rules.get(id);
    const rule: FakeRule = {
      id,
      from,
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
      config: {
        name: typeof fields.name === "string" ? fields.name : "",
        sql: fields.sql,
        actions: normalized,
        enable: fields.enable ?? true,
        description: typeof fields.description === "string" ? fields.description : "",
      },
    };
    this.rules.set(id, rule);
    return { status, body: formatRule(rule) };
  }

  // Authentication: `emqx_authn_api.erl`.

  #authenticatorRoute(id: string): Reply {
    if (id !== AUTHENTICATOR_ID || this.authenticator === undefined) {
      return notFoundError(`Authenticator '${id}' does not exist`);
    }
    return {
      status: 200,
      body: {
        id,
        mechanism: "password_based",
        backend: "built_in_database",
        user_id_type: "username",
        enable: this.authenticator.enable,
        password_hash_algorithm: { name: "sha256", salt_position: "suffix" },
      },
    };
  }

  #usersRoute(method: string, query: URLSearchParams, body: unknown): Reply {
    if (this.authenticator === undefined) return noAuthenticator();
    if (method === "GET") {
      const like = query.get("like_user_id");
      const items = [...this.users.entries()]
        .filter(([userId]) => like === null || userId.includes(like))
        .map(([userId, user]) => ({ user_id: userId, is_superuser: user.isSuperuser }));
      return paginate(items, query);
    }
    if (method !== "POST") return methodNotAllowed();
    const fields = asRecord(body) ?? {};
    if (typeof fields.user_id !== "string") {
      return badRequest("Missing required parameter: user_id");
    }
    if (typeof fields.password !== "string") {
      return badRequest("Missing required parameter: password");
    }
    if (this.users.has(fields.user_id)) {
      return { status: 409, body: { code: "ALREADY_EXISTS", message: "User already exists" } };
    }
    const isSuperuser = fields.is_superuser === true;
    this.users.set(fields.user_id, { password: fields.password, isSuperuser });
    return { status: 201, body: { user_id: fields.user_id, is_superuser: isSuperuser } };
  }

  #user(method: string, userId: string, body: unknown): Reply {
    if (this.authenticator === undefined) return noAuthenticator();
    const user = this.users.get(userId);
    const missing = notFoundError("User not found");
    if (method === "GET") {
      return user === undefined
        ? missing
        : { status: 200, body: { user_id: userId, is_superuser: user.isSuperuser } };
    }
    if (method === "PUT") {
      const fields = asRecord(body) ?? {};
      if (fields.password === undefined && fields.is_superuser === undefined) {
        return badRequest("Missing required parameter: password");
      }
      if (user === undefined) return missing;
      if (typeof fields.password === "string") user.password = fields.password;
      if (typeof fields.is_superuser === "boolean") user.isSuperuser = fields.is_superuser;
      return { status: 200, body: { user_id: userId, is_superuser: user.isSuperuser } };
    }
    if (method === "DELETE") {
      if (user === undefined) return missing;
      this.users.delete(userId);
      return { status: 204 };
    }
    return methodNotAllowed();
  }

  // Authorization: `emqx_authz_api_sources.erl` and `emqx_authz_api_mnesia.erl`.

  #authzSource(): { type: string; enable: boolean; max_rules?: number } | undefined {
    return this.authzSources.find((source) => source.type === AUTHZ_SOURCE_TYPE);
  }

  #userRulesRoute(method: string, query: URLSearchParams, body: unknown): Reply {
    if (method === "GET") {
      const like = query.get("like_username");
      const items = [...this.userRules.entries()]
        .filter(([username]) => like === null || username.includes(like))
        .map(([username, rules]) => ({ username, rules: rules.map(formatAuthzRule) }));
      return paginate(items, query);
    }
    if (method !== "POST") return methodNotAllowed();
    if (!Array.isArray(body)) return validationError("body", "not an array");
    for (const entry of body) {
      const fields = asRecord(entry);
      if (typeof fields?.username !== "string") {
        return validationError("username", "required_field");
      }
      const invalid = this.#checkAuthzRules(fields.rules);
      if (invalid !== undefined) return invalid;
      if (this.userRules.has(fields.username)) {
        return {
          status: 409,
          body: { code: "ALREADY_EXISTS", message: `User '${fields.username}' already exist` },
        };
      }
    }
    for (const entry of body as { username: string; rules: FakeAuthzRule[] }[]) {
      this.userRules.set(entry.username, entry.rules.map(storedAuthzRule));
    }
    return { status: 204 };
  }

  #userRuleSet(method: string, username: string, body: unknown): Reply {
    const rules = this.userRules.get(username);
    if (method === "GET") {
      return rules === undefined
        ? notFoundError("Not Found")
        : { status: 200, body: { username, rules: rules.map(formatAuthzRule) } };
    }
    if (method === "PUT") {
      const fields = asRecord(body);
      if (fields?.username !== username) {
        return validationError("username", "does not match the path");
      }
      const invalid = this.#checkAuthzRules(fields.rules);
      if (invalid !== undefined) return invalid;
      this.userRules.set(username, (fields.rules as FakeAuthzRule[]).map(storedAuthzRule));
      return { status: 204 };
    }
    if (method === "DELETE") {
      if (rules === undefined) return notFoundError("Username Not Found");
      this.userRules.delete(username);
      return { status: 204 };
    }
    return methodNotAllowed();
  }

  /** `rules/all`: GET lists, POST replaces the whole list, DELETE empties it. */
  #allRulesRoute(method: string, body: unknown): Reply {
    if (method === "GET") {
      return { status: 200, body: { rules: this.allRules.map(formatAuthzRule) } };
    }
    if (method === "DELETE") {
      this.allRules = [];
      return { status: 204 };
    }
    if (method !== "POST") return methodNotAllowed();
    const rules = asRecord(body)?.rules;
    const invalid = this.#checkAuthzRules(rules);
    if (invalid !== undefined) return invalid;
    this.allRules = (rules as FakeAuthzRule[]).map(storedAuthzRule);
    return { status: 204 };
  }

  #checkAuthzRules(rules: unknown): Reply | undefined {
    if (!Array.isArray(rules)) return validationError("rules", "required_field");
    for (const rule of rules) {
      const fields = asRecord(rule);
      if (typeof fields?.topic !== "string") return validationError("rules.topic", "required");
      if (fields.permission !== "allow" && fields.permission !== "deny") {
        return validationError("rules.permission", "unable_to_convert_to_enum_symbol");
      }
      if (!["publish", "subscribe", "all"].includes(String(fields.action))) {
        return validationError("rules.action", "unable_to_convert_to_enum_symbol");
      }
    }
    const maxRules = this.#authzSource()?.max_rules ?? 100;
    if (rules.length > maxRules) {
      return badRequest("The rules length exceeds the maximum limit.");
    }
    return undefined;
  }
}

/** Starts a fake on a free loopback port. */
export async function startFakeEmqxBridges(
  options: FakeEmqxBridgesOptions = {},
): Promise<FakeEmqxBridges> {
  const fake = new FakeEmqxBridges(options);
  await fake.start();
  return fake;
}

/** `emqx_resource:validate_name/2`. */
function checkResourceName(name: string): Reply | undefined {
  if (name === "") return validationError("name", "Name cannot be empty string");
  if (name.length >= 255) return validationError("name", "Name length must be less than 255");
  if (!NAME_PATTERN.test(name)) {
    return validationError(
      "name",
      `Invalid name format. The name must begin with a letter or number (0-9, a-z, A-Z) and can only include underscores and hyphens as non-initial characters. Got: ${name}`,
    );
  }
  return undefined;
}

function parseResourceId(id: string): { type: string; name: string } | undefined {
  const separator = id.indexOf(":");
  if (separator <= 0 || separator === id.length - 1) return undefined;
  return { type: id.slice(0, separator), name: id.slice(separator + 1) };
}

/** The MQTT connector defaults of `emqx_bridge_mqtt_connector_schema.erl`. */
function connectorDefaults(name: string, config: Record<string, unknown>): Record<string, unknown> {
  const ssl: Record<string, unknown> = {
    enable: false,
    verify: "verify_none",
    ...(asRecord(config.ssl) ?? {}),
  };
  if (typeof ssl.cacertfile === "string" && ssl.cacertfile.includes("-----BEGIN")) {
    // EMQX writes PEM text to a file and keeps the file's path.
    ssl.cacertfile = `data/certs/connectors/mqtt/${name}/cacertfile-${randomBytes(4).toString("hex")}`;
  }
  return {
    enable: true,
    description: "",
    proto_ver: "v4",
    bridge_mode: false,
    clean_start: true,
    keepalive: "160s",
    connect_timeout: "10s",
    retry_interval: "15s",
    max_inflight: 32,
    pool_size: 8,
    static_clientids: [],
    resource_opts: { health_check_interval: "15s", start_timeout: "5s" },
    ...config,
    ssl,
  };
}

function channelDefaults(
  kind: "sources" | "actions",
  config: Record<string, unknown>,
): Record<string, unknown> {
  const parameters = asRecord(config.parameters) ?? {};
  const parameterDefaults =
    kind === "sources" ? { qos: 1, no_local: false } : { qos: 1, retain: false };
  return {
    enable: true,
    description: "",
    resource_opts: { health_check_interval: "15s" },
    ...config,
    parameters: { ...parameterDefaults, ...parameters },
  };
}

/** `filter_out_request_body/1`: PUT ignores the identity and status fields of a GET body. */
function withoutIdentity(fields: Record<string, unknown>): Record<string, unknown> {
  const {
    id: _id,
    type: _type,
    name: _name,
    status: _status,
    node_status: _nodeStatus,
    ...rest
  } = fields;
  return rest;
}

/** The rules API's own `filter_out_request_body/1`, which keeps `name`. */
function withoutRuleStatus(fields: Record<string, unknown>): Record<string, unknown> {
  const {
    id: _id,
    status: _status,
    node_status: _nodeStatus,
    node_metrics: _nodeMetrics,
    metrics: _metrics,
    node: _node,
    ...rest
  } = fields;
  return rest;
}

function redact(config: Record<string, unknown>): Record<string, unknown> {
  return config.password === undefined ? config : { ...config, password: "******" };
}

function formatRule(rule: FakeRule): Record<string, unknown> {
  return {
    id: rule.id,
    ...rule.config,
    from: rule.from,
    created_at: rule.createdAt,
    last_modified_at: rule.updatedAt,
  };
}

function storedAuthzRule(rule: FakeAuthzRule): FakeAuthzRule {
  return { topic: rule.topic, permission: rule.permission, action: rule.action };
}

/** `emqx_authz_rule_raw:format_rule/1`, which adds the default QoS and retain options. */
function formatAuthzRule(rule: FakeAuthzRule): Record<string, unknown> {
  const options =
    rule.action === "subscribe" ? { qos: [0, 1, 2] } : { qos: [0, 1, 2], retain: "all" };
  return { ...rule, ...options };
}

/** The topics and events in `SELECT ... FROM "a", "b"`, or undefined when the SQL is not one. */
function parseSqlFrom(sql: string): string[] | undefined {
  const match = /^\s*SELECT\s+.+?\s+FROM\s+((?:"[^"]+"\s*,\s*)*"[^"]+")\s*(?:WHERE\s+.+)?$/is.exec(
    sql,
  );
  if (match?.[1] === undefined) return undefined;
  return [...match[1].matchAll(/"([^"]+)"/g)].map((item) => item[1] ?? "");
}

/** `emqx_mgmt_api:node_query/6`: `page` from 1 and `limit` from 1 to 10,000. */
function paginate(items: unknown[], query: URLSearchParams): Reply {
  const page = Number(query.get("page") ?? "1");
  const limit = Number(query.get("limit") ?? String(DEFAULT_ROW_LIMIT));
  if (!Number.isInteger(page) || page < 1 || !Number.isInteger(limit)) {
    return { status: 400, body: { code: "BAD_REQUEST", message: "page_limit_invalid" } };
  }
  if (limit < 1 || limit > MAX_ROW_LIMIT) return validationError("limit", "out of range");
  const start = (page - 1) * limit;
  return {
    status: 200,
    body: {
      data: items.slice(start, start + limit),
      meta: { page, limit, count: items.length, hasnext: start + limit < items.length },
    },
  };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function badRequest(message: string, code = "BAD_REQUEST"): Reply {
  return { status: 400, body: { code, message } };
}

function validationError(path: string, reason: string): Reply {
  return badRequest(JSON.stringify({ kind: "validation_error", path, reason }));
}

function notFoundError(message: string): Reply {
  return { status: 404, body: { code: "NOT_FOUND", message } };
}

function noAuthenticator(): Reply {
  return notFoundError("Authenticator not found in the 'global' scope");
}

function methodNotAllowed(): Reply {
  return { status: 405, body: { code: "METHOD_NOT_ALLOWED", message: "Method not allowed" } };
}

/** `emqx_dashboard_not_found`: JSON for clients that accept it, HTML otherwise. */
function notFound(request: IncomingMessage, response: ServerResponse): void {
  if ((request.headers.accept ?? "").startsWith("application/json")) {
    sendJson(response, {
      status: 404,
      body: { code: "NOT_FOUND", message: "Request Path Not Found" },
    });
    return;
  }
  response.writeHead(404, { "content-type": "text/html" });
  response.end("<html><body><h1>404 - NOT FOUND</h1></body></html>");
}

function sendJson(response: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    response.writeHead(reply.status);
    response.end();
    return;
  }
  response.writeHead(reply.status, { "content-type": "application/json" });
  response.end(JSON.stringify(reply.body));
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
