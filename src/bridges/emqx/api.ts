/**
 * Calls of the EMQX 5.8 REST API v5 that the bridge driver needs: connectors, sources, actions,
 * rules, the built-in database authenticator's users and the built-in database authorization
 * rules per username. Paths, bodies and status codes follow the EMQX v5.8.8 sources
 * (`emqx_connector_api.erl`, `emqx_bridge_v2_api.erl`, `emqx_rule_engine_api.erl`,
 * `emqx_authn_api.erl`, `emqx_authz_api_sources.erl` and `emqx_authz_api_mnesia.erl`). The
 * removed `/api/v5/bridges` API is never used.
 */
import { z } from "zod";
import {
  type EmqxRawResponse,
  type EmqxTransport,
  parseEmqxJson,
} from "../../metering/emqx/transport.ts";

/** The authenticator whose users the driver manages. */
export const AUTHENTICATOR_ID = "password_based:built_in_database";
/** The authorization source whose per-username rules the driver manages. */
export const AUTHZ_SOURCE_TYPE = "built_in_database";

const PAGE_LIMIT = 100;
/** Stops a paginated listing that never ends, which a correct EMQX never returns. */
const MAX_PAGES = 10_000;

/** A connector, source or action as EMQX lists it: its type, name and every config field. */
const resourceSchema = z.looseObject({ type: z.string(), name: z.string() });
export type EmqxResource = z.infer<typeof resourceSchema>;

const ruleSchema = z.looseObject({ id: z.string() });
export type EmqxRule = z.infer<typeof ruleSchema>;

const userSchema = z.looseObject({ user_id: z.string() });

/** One authorization rule as the built-in database stores it. */
export interface AuthzRule {
  topic: string;
  permission: "allow" | "deny";
  action: "publish" | "subscribe" | "all";
}
const authzRulesSchema = z.looseObject({
  username: z.string(),
  rules: z.array(z.looseObject({ topic: z.string(), permission: z.string(), action: z.string() })),
});
export type EmqxUserRules = z.infer<typeof authzRulesSchema>;

const enableSchema = z.looseObject({ enable: z.boolean().optional() });
const authzSourcesSchema = z.looseObject({
  sources: z.array(z.looseObject({ type: z.string(), enable: z.boolean().optional() })),
});

function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({
    data: z.array(item),
    meta: z.looseObject({ hasnext: z.boolean().optional() }),
  });
}

export type ChannelKind = "sources" | "actions";

/** Typed calls of the bridge-related EMQX API. Every method throws `EmqxApiError` on failure. */
export class EmqxBridgeApi {
  readonly #transport: EmqxTransport;

  constructor(transport: EmqxTransport) {
    this.#transport = transport;
  }

  async listConnectors(): Promise<EmqxResource[]> {
    return parseEmqxJson(
      await this.#transport.request("GET", "connectors"),
      z.array(resourceSchema),
    );
  }

  async createConnector(name: string, config: Record<string, unknown>): Promise<void> {
    await this.#transport.request("POST", "connectors", {
      body: { type: "mqtt", name, ...config },
    });
  }

  async updateConnector(name: string, config: Record<string, unknown>): Promise<void> {
    await this.#transport.request("PUT", `connectors/mqtt:${name}`, { body: config });
  }

  async deleteConnector(name: string): Promise<void> {
    await this.#transport.request("DELETE", `connectors/mqtt:${name}`);
  }

  async listChannels(kind: ChannelKind): Promise<EmqxResource[]> {
    return parseEmqxJson(await this.#transport.request("GET", kind), z.array(resourceSchema));
  }

  async createChannel(
    kind: ChannelKind,
    name: string,
    config: Record<string, unknown>,
  ): Promise<void> {
    await this.#transport.request("POST", kind, { body: { type: "mqtt", name, ...config } });
  }

  async updateChannel(
    kind: ChannelKind,
    name: string,
    config: Record<string, unknown>,
  ): Promise<void> {
    await this.#transport.request("PUT", `${kind}/mqtt:${name}`, { body: config });
  }

  async deleteChannel(kind: ChannelKind, name: string): Promise<void> {
    await this.#transport.request("DELETE", `${kind}/mqtt:${name}`);
  }

  /** Lists the rules whose id contains `idPart` (EMQX's `like_id` is a substring match). */
  async listRules(idPart: string): Promise<EmqxRule[]> {
    return this.#listPages("rules", { like_id: idPart }, ruleSchema);
  }

  async createRule(id: string, config: Record<string, unknown>): Promise<void> {
    await this.#transport.request("POST", "rules", { body: { id, ...config } });
  }

  async updateRule(id: string, config: Record<string, unknown>): Promise<void> {
    await this.#transport.request("PUT", `rules/${encodeURIComponent(id)}`, { body: config });
  }

  async deleteRule(id: string): Promise<void> {
    await this.#transport.request("DELETE", `rules/${encodeURIComponent(id)}`);
  }

  /** Returns the built-in database authenticator's `enable` flag, or undefined without one. */
  async authenticatorEnabled(): Promise<boolean | undefined> {
    const response = await this.#transport.request(
      "GET",
      `authentication/${AUTHENTICATOR_ID}`,
      {},
      [404],
    );
    if (response.status === 404) return undefined;
    return parseEmqxJson(response, enableSchema).enable ?? true;
  }

  /** Lists the authorization sources in the order EMQX checks them, with their `enable` flag. */
  async listAuthzSources(): Promise<{ type: string; enable: boolean }[]> {
    const response = await this.#transport.request("GET", "authorization/sources");
    return parseEmqxJson(response, authzSourcesSchema).sources.map((source) => ({
      type: source.type,
      enable: source.enable ?? true,
    }));
  }

  /** Lists the user ids of the built-in database that contain `idPart`. */
  async listUsers(idPart: string): Promise<string[]> {
    const users = await this.#listPages(
      `authentication/${AUTHENTICATOR_ID}/users`,
      { like_user_id: idPart },
      userSchema,
    );
    return users.map((user) => user.user_id);
  }

  async createUser(userId: string, password: string): Promise<void> {
    await this.#transport.request("POST", `authentication/${AUTHENTICATOR_ID}/users`, {
      body: { user_id: userId, password, is_superuser: false },
    });
  }

  async updateUserPassword(userId: string, password: string): Promise<void> {
    await this.#transport.request("PUT", userPath(userId), {
      body: { password, is_superuser: false },
    });
  }

  async deleteUser(userId: string): Promise<void> {
    await this.#transport.request("DELETE", userPath(userId));
  }

  /** Lists the per-username rules of the built-in database for usernames containing `part`. */
  async listUserRules(part: string): Promise<EmqxUserRules[]> {
    return this.#listPages(
      `authorization/sources/${AUTHZ_SOURCE_TYPE}/rules/users`,
      { like_username: part },
      authzRulesSchema,
    );
  }

  async createUserRules(username: string, rules: readonly AuthzRule[]): Promise<void> {
    await this.#transport.request(
      "POST",
      `authorization/sources/${AUTHZ_SOURCE_TYPE}/rules/users`,
      { body: [{ username, rules }] },
    );
  }

  async updateUserRules(username: string, rules: readonly AuthzRule[]): Promise<void> {
    await this.#transport.request("PUT", userRulesPath(username), { body: { username, rules } });
  }

  async deleteUserRules(username: string): Promise<void> {
    await this.#transport.request("DELETE", userRulesPath(username));
  }

  async #listPages<T extends z.ZodType>(
    path: string,
    query: Record<string, string>,
    item: T,
  ): Promise<z.infer<T>[]> {
    const items: z.infer<T>[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const response: EmqxRawResponse = await this.#transport.request("GET", path, {
        query: { ...query, page: String(page), limit: String(PAGE_LIMIT) },
      });
      const body = parseEmqxJson(response, pageSchema(item));
      items.push(...body.data);
      const hasNext = body.meta.hasnext ?? body.data.length === PAGE_LIMIT;
      if (!hasNext || body.data.length === 0) return items;
    }
    throw new Error(`EMQX API GET ${path} returned more than ${MAX_PAGES} pages; stopped listing`);
  }
}

function userPath(userId: string): string {
  return `authentication/${AUTHENTICATOR_ID}/users/${encodeURIComponent(userId)}`;
}

function userRulesPath(username: string): string {
  return `authorization/sources/${AUTHZ_SOURCE_TYPE}/rules/users/${encodeURIComponent(username)}`;
}
