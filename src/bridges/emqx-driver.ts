/**
 * The bridge driver for EMQX 5.8, through its REST API v5 (connectors, sources, actions, rules
 * and the built-in database for authentication and authorization). `src/bridges/emqx/resources.ts`
 * describes which EMQX resources one bridge becomes.
 *
 * NOTE: the driver has not run against a live EMQX. Its only tests use the contract fake in
 * `test/fakes/emqx-bridges.ts`, which follows the EMQX v5.8.8 sources.
 */
import type { Logger } from "@logtape/logtape";
import { getNodeLogger } from "../logging.ts";
import { EmqxTransport } from "../metering/emqx/transport.ts";
import {
  type ApplyReport,
  type BridgeSpec,
  type BrokerBridgeDriver,
  checkBridgeSpec,
  type DesiredBrokerState,
  InvalidBridgeError,
  OWNED_RESOURCE_PREFIX,
  parseBridgeTopic,
} from "./driver.ts";
import { type ChannelKind, EmqxBridgeApi, type EmqxResource } from "./emqx/api.ts";
import { checkGrants, grantIdFromUsername, reconcileGrants } from "./emqx/grants.ts";
import {
  bridgeIdFromName,
  type DesiredResource,
  type DesiredResources,
  desiredResources,
  differingFields,
  MQTT_TYPE,
  UNREADABLE_FIELDS,
} from "./emqx/resources.ts";

export { EmqxSetupError } from "./emqx/grants.ts";

export interface EmqxBridgeDriverOptions {
  /** The EMQX dashboard listener, such as `http://127.0.0.1:18083`, or a URL ending in `/api/v5`. */
  url: URL;
  /** EMQX API key, taken from the URL's user name when unset. */
  apiKey?: string | undefined;
  /** EMQX API secret, taken from the URL's password when unset. */
  apiSecret?: string | undefined;
  /** The node's Pepeunit domain, the first topic level of local UnitNode topics. */
  localDomain: string;
  /** Milliseconds one API request may take, 10,000 when unset. */
  timeoutMs?: number;
  /**
   * PEM CA certificates that connectors to `mqtts://` brokers verify the remote broker against.
   * EMQX 5.8 has no default CA for client connections, so the driver rejects `mqtts://` bridges
   * when this is unset.
   */
  tlsCaCertificates?: string | undefined;
  logger?: Logger;
}

/** Runs bridges and export grants on EMQX 5.8. `restarted` is always false: EMQX never restarts. */
export class EmqxBridgeDriver implements BrokerBridgeDriver {
  readonly kind = "emqx" as const;
  readonly #api: EmqxBridgeApi;
  readonly #localDomain: string;
  readonly #fingerprintKey: string;
  readonly #tlsCaCertificates: string | undefined;
  readonly #logger: Logger;
  readonly #passwordFingerprints = new Map<string, string>();
  readonly #loggedWarnings = new Set<string>();

  constructor(options: EmqxBridgeDriverOptions) {
    this.#api = new EmqxBridgeApi(
      new EmqxTransport({
        url: options.url,
        apiKey: options.apiKey,
        apiSecret: options.apiSecret,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      }),
    );
    this.#localDomain = options.localDomain;
    // The transport has already rejected a missing secret, so this key is never empty.
    this.#fingerprintKey = options.apiSecret ?? decodeURIComponent(options.url.password);
    this.#tlsCaCertificates = options.tlsCaCertificates;
    this.#logger = options.logger ?? getNodeLogger("bridges", "emqx");
  }

  async apply(desired: DesiredBrokerState): Promise<ApplyReport> {
    // Every check runs before the first request, so an invalid state changes nothing. Building
    // the resources checks remote URLs, TLS settings and duplicate routes.
    this.#checkBridges(desired.bridges);
    checkGrants(desired.grants, this.#localDomain);
    const resources = desiredResources(desired.bridges, {
      fingerprintKey: this.#fingerprintKey,
      tlsCaCertificates: this.#tlsCaCertificates,
    });

    const bridgeChanges = await this.#reconcileBridges(resources);
    const grantChanges = await reconcileGrants(desired.grants, {
      api: this.#api,
      localDomain: this.#localDomain,
      fingerprintKey: this.#fingerprintKey,
      passwordFingerprints: this.#passwordFingerprints,
      loggedWarnings: this.#loggedWarnings,
      logger: this.#logger,
    });
    return {
      created: unique([...bridgeChanges.created, ...grantChanges.created]),
      updated: unique([...bridgeChanges.updated, ...grantChanges.updated]),
      removed: unique([...bridgeChanges.removed, ...grantChanges.removed]),
      restarted: false,
    };
  }

  async inspect(): Promise<{ bridges: string[]; grants: string[] }> {
    const connectors = owned(await this.#api.listConnectors());
    const bridges = connectors.map((connector) => bridgeIdFromName(connector.name));
    let grants: (string | undefined)[] = [];
    if ((await this.#api.authenticatorEnabled()) !== undefined) {
      const users = await this.#api.listUsers(OWNED_RESOURCE_PREFIX);
      grants = users.filter((id) => id.startsWith(OWNED_RESOURCE_PREFIX)).map(grantIdFromUsername);
    }
    return {
      bridges: unique(bridges.filter((id) => id !== undefined)).sort(),
      grants: unique(grants.filter((id) => id !== undefined)).sort(),
    };
  }

  /**
   * Checks every bridge against the export rule. The remote domain of an `in` bridge is the
   * origin domain of its routes, which must all share it and must not be the local domain.
   * For `out` bridges the rule only needs the local domain.
   */
  #checkBridges(bridges: readonly BridgeSpec[]): void {
    const ids = new Set<string>();
    for (const spec of bridges) {
      if (ids.has(spec.id)) throw new InvalidBridgeError(`Bridge ${spec.id} is listed twice`);
      ids.add(spec.id);
      const firstRoute = spec.routes[0];
      let remoteDomain = "";
      if (spec.direction === "in" && firstRoute !== undefined) {
        remoteDomain = parseBridgeTopic(firstRoute.topic).domain;
        if (remoteDomain === this.#localDomain) {
          throw new InvalidBridgeError(
            `Bridge ${spec.id} (in) cannot carry ${firstRoute.topic}: topics of the local domain ${this.#localDomain} never come back into this broker`,
          );
        }
      }
      checkBridgeSpec(spec, this.#localDomain, remoteDomain);
      if (spec.remote.clientId === "") {
        throw new InvalidBridgeError(`Bridge ${spec.id} has an empty MQTT client id`);
      }
    }
  }

  /**
   * Creates and updates connectors, then sources and actions, then rules, and deletes in the
   * reverse order, because EMQX rejects deleting a source or action that a rule uses and a
   * connector that a source or action uses.
   */
  async #reconcileBridges(desired: DesiredResources): Promise<ReportedChanges> {
    const api = this.#api;
    const connectors = byName(owned(await api.listConnectors()));
    const sources = byName(owned(await api.listChannels("sources")));
    const actions = byName(owned(await api.listChannels("actions")));
    const rules = new Map(
      (await api.listRules(OWNED_RESOURCE_PREFIX))
        .filter((rule) => rule.id.startsWith(OWNED_RESOURCE_PREFIX))
        .map((rule) => [rule.id, rule]),
    );
    const changes = new ChangeTracker();

    for (const resource of desired.connectors.values()) {
      const outcome = await this.#upsert("connector", resource, connectors.get(resource.name), {
        create: () => api.createConnector(resource.name, resource.config),
        update: () => api.updateConnector(resource.name, resource.config),
      });
      changes.record(resource.bridgeId, outcome === "created" ? "created" : outcome);
    }
    for (const [kind, current] of [
      ["sources", sources],
      ["actions", actions],
    ] as const) {
      for (const resource of desired[kind].values()) {
        const outcome = await this.#upsert(
          channelLabel(kind),
          resource,
          current.get(resource.name),
          {
            create: () => api.createChannel(kind, resource.name, resource.config),
            update: () => api.updateChannel(kind, resource.name, resource.config),
          },
        );
        changes.record(resource.bridgeId, outcome === undefined ? undefined : "updated");
      }
    }
    for (const resource of desired.rules.values()) {
      const outcome = await this.#upsert("rule", resource, rules.get(resource.name), {
        create: () => api.createRule(resource.name, resource.config),
        update: () => api.updateRule(resource.name, resource.config),
      });
      changes.record(resource.bridgeId, outcome === undefined ? undefined : "updated");
    }

    for (const id of rules.keys()) {
      if (desired.rules.has(id)) continue;
      await api.deleteRule(id);
      this.#logRemoval("rule", id);
      changes.record(bridgeIdFromName(id), "updated");
    }
    for (const [kind, current] of [
      ["sources", sources],
      ["actions", actions],
    ] as const) {
      for (const name of current.keys()) {
        if (desired[kind].has(name)) continue;
        await api.deleteChannel(kind, name);
        this.#logRemoval(channelLabel(kind), name);
        changes.record(bridgeIdFromName(name), "updated");
      }
    }
    for (const name of connectors.keys()) {
      if (desired.connectors.has(name)) continue;
      await api.deleteConnector(name);
      this.#logRemoval("connector", name);
      changes.record(bridgeIdFromName(name) ?? name, "removed");
    }
    return changes.report();
  }

  /** Creates the resource when it is missing, updates it when a field the node sets differs. */
  async #upsert(
    label: string,
    resource: DesiredResource,
    current: Record<string, unknown> | undefined,
    calls: { create: () => Promise<void>; update: () => Promise<void> },
  ): Promise<"created" | "updated" | undefined> {
    if (current === undefined) {
      await calls.create();
      this.#logger.info("Created EMQX {kind} {name} for bridge {bridgeId}", {
        kind: label,
        name: resource.name,
        bridgeId: resource.bridgeId ?? "(all in bridges)",
      });
      return "created";
    }
    const differing = differingFields(resource.config, current, UNREADABLE_FIELDS);
    if (differing.length === 0) return undefined;
    await calls.update();
    this.#logger.info("Updated EMQX {kind} {name} for bridge {bridgeId}: {fields} differed", {
      kind: label,
      name: resource.name,
      bridgeId: resource.bridgeId ?? "(all in bridges)",
      fields: differing,
    });
    return "updated";
  }

  #logRemoval(label: string, name: string): void {
    this.#logger.info("Deleted EMQX {kind} {name}", { kind: label, name });
  }
}

interface ReportedChanges {
  created: string[];
  updated: string[];
  removed: string[];
}

/** Collects which bridges an apply created, changed or removed, each in one list only. */
class ChangeTracker {
  readonly #created = new Set<string>();
  readonly #updated = new Set<string>();
  readonly #removed = new Set<string>();

  record(bridgeId: string | undefined, change: "created" | "updated" | "removed" | undefined) {
    if (bridgeId === undefined || change === undefined) return;
    if (change === "created") this.#created.add(bridgeId);
    if (change === "updated") this.#updated.add(bridgeId);
    if (change === "removed") this.#removed.add(bridgeId);
  }

  report(): ReportedChanges {
    return {
      created: [...this.#created],
      updated: [...this.#updated].filter((id) => !this.#created.has(id) && !this.#removed.has(id)),
      removed: [...this.#removed],
    };
  }
}

/** Keeps the MQTT resources whose names carry the node's prefix. */
function owned(resources: readonly EmqxResource[]): EmqxResource[] {
  return resources.filter(
    (resource) => resource.type === MQTT_TYPE && resource.name.startsWith(OWNED_RESOURCE_PREFIX),
  );
}

function byName(resources: readonly EmqxResource[]): Map<string, EmqxResource> {
  return new Map(resources.map((resource) => [resource.name, resource]));
}

function channelLabel(kind: ChannelKind): string {
  return kind === "sources" ? "source" : "action";
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}
