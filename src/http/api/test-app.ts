/** Test helpers: a Hono app that mounts the API like the node does, with a fake federation port. */
import { Hono } from "hono";
import type { TestDatabase } from "../../../test/postgres.ts";
import { loadConfig } from "../../config.ts";
import {
  FederationLookupError,
  type FederationPort,
  type FollowedInstance,
} from "../../federation-port.ts";
import { ErrorCounter } from "../../metering/errors/counter.ts";
import { DomainPolicyEngine } from "../../policy/engine.ts";
import type { NodeServices } from "../../services.ts";
import { createTimeSeriesStore } from "../../timeseries/factory.ts";
import { createApiRoutes } from "./index.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789";

/** Follows kept in memory; any target on the host `unreachable.example` fails the lookup. */
export class FakeFederationPort implements FederationPort {
  readonly followed = new Map<string, FollowedInstance>();

  async followInstance(target: URL): Promise<FollowedInstance> {
    if (target.hostname === "unreachable.example") {
      throw new FederationLookupError(target.href, "no ActivityPub actor found");
    }
    const followed: FollowedInstance = {
      actorIri: new URL("/ap/actors/instance", target).href,
      host: target.host,
      state: "pending",
    };
    this.followed.set(target.host, followed);
    return followed;
  }

  async unfollowInstance(target: URL): Promise<boolean> {
    return this.followed.delete(target.host);
  }

  /** Rejects every bridge request, because bridges need a real peer; bridge tests use real nodes. */
  async requestBridge(target: URL): Promise<never> {
    throw new FederationLookupError(target.href, "the fake federation port makes no bridges");
  }

  async endBridge(): Promise<undefined> {
    return undefined;
  }
}

export function createTestApi(database: TestDatabase, federation: FederationPort) {
  const config = loadConfig({ PU_NODE_ENV: "test", PU_NODE_ORIGIN: "https://node.example.com" });
  const services: NodeServices = {
    config,
    pool: database.pool,
    db: database.db,
    federation,
    adminToken: ADMIN_TOKEN,
    timeSeries: createTimeSeriesStore(config, database.pool),
    errorCounter: new ErrorCounter(),
    policy: new DomainPolicyEngine("open"),
  };
  const app = new Hono();
  app.route("/api/v1", createApiRoutes(services));
  return app;
}

/** Request options with the admin token and, when `body` is given, a JSON body. */
export function adminRequest(method: string, body?: unknown): RequestInit {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
  if (body === undefined) return { method, headers };
  headers["content-type"] = "application/json";
  return { method, headers, body: JSON.stringify(body) };
}
