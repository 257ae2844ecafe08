/**
 * The policy gate: Hono middleware that rejects federation requests from suspended hosts and
 * throttles busy senders before Fedify reads the body, fetches a key or verifies a signature.
 * The host is the one the signature headers claim (see `claimed-host.ts`), so the gate costs
 * no network traffic. A request without signature headers passes, and Fedify rejects it
 * with 401 without fetching anything.
 */
import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import { isInboxPath } from "../../federation/inbox-guard.ts";
import { errorResponse } from "../http/errors.ts";
import { getNodeLogger } from "../logging.ts";
import { hasSignatureHeaders, parseClaimedHosts } from "./claimed-host.ts";
import type { InboxRateLimiter } from "./rate-limit.ts";
import type { PolicyEngine } from "./types.ts";

const logger = getNodeLogger("policy", "gate");

/** Error code of each kind of rejection, as sent in the response body. */
export type RejectionReason = "domain_blocked" | "rate_limited";

/** Rejections of one claimed host for one reason since the process started. */
export interface RejectionCount {
  host: string;
  reason: RejectionReason;
  count: number;
  firstAt: Date;
  lastAt: Date;
}

export interface PolicyGateStats {
  /** One entry per (host, reason) pair, at most {@link MAX_COUNTED_PAIRS}. */
  rejections: RejectionCount[];
  /** Rejections of pairs that arrived after the table was full and so are not in `rejections`. */
  untrackedRejections: number;
}

export interface PolicyGateOptions {
  engine: PolicyEngine;
  limiter: InboxRateLimiter;
  /**
   * Returns the client IP of a request. The default reads the socket's remote address, which
   * behind a reverse proxy is the proxy's for every request.
   */
  clientAddress?: (c: Context) => string | undefined;
  /** Clock for decisions and buckets; tests pass a fixed one. */
  now?: () => Date;
}

export interface PolicyGate {
  /** Rejects and throttles POSTs to inbox paths; other requests pass untouched. */
  inbox: MiddlewareHandler;
  /** Rejects signed GET and HEAD requests of ActivityPub documents from suspended hosts. */
  documents: MiddlewareHandler;
  /** Rejection counts per claimed host and reason, for automatic bans. */
  stats(): PolicyGateStats;
}

/**
 * Bound on the rejection table. Claimed hosts are chosen by the sender, so without a bound a
 * sender naming a new host in every request could grow the table forever.
 */
export const MAX_COUNTED_PAIRS = 10_000;

/** Placeholder IP for requests whose socket address is unknown (`app.request()` in tests). */
const UNKNOWN_ADDRESS = "unknown";

/** True for paths of the documents that Fedify serves: actors, collections, objects, discovery. */
export function isActivityPubDocumentPath(pathname: string): boolean {
  return (
    pathname.startsWith("/ap/") ||
    pathname === "/.well-known/webfinger" ||
    pathname === "/.well-known/nodeinfo" ||
    pathname.startsWith("/nodeinfo/")
  );
}

/**
 * Builds the gate. Register `inbox` before `inboxGuard()` (which reads the body) and
 * `documents` before the Fedify middleware.
 */
export function createPolicyGate(options: PolicyGateOptions): PolicyGate {
  const { engine, limiter } = options;
  const now = options.now ?? (() => new Date());
  const clientAddress = options.clientAddress ?? socketAddress;
  const rejections = new Map<string, RejectionCount>();
  let untrackedRejections = 0;

  function countRejection(host: string, reason: RejectionReason, at: Date): number {
    const key = `${reason} ${host}`;
    const entry = rejections.get(key);
    if (entry) {
      entry.count++;
      entry.lastAt = at;
      return entry.count;
    }
    if (rejections.size >= MAX_COUNTED_PAIRS) {
      untrackedRejections++;
      return 0;
    }
    rejections.set(key, { host, reason, count: 1, firstAt: at, lastAt: at });
    return 1;
  }

  /** Returns a 403 response when one of the claimed hosts is suspended, otherwise `undefined`. */
  function rejectSuspended(c: Context, hosts: string[], at: Date): Response | undefined {
    for (const host of hosts) {
      const decision = engine.decide(host, at);
      if (decision.action !== "suspend") continue;

      const count = countRejection(host, "domain_blocked", at);
      const properties = {
        host,
        method: c.req.method,
        path: c.req.path,
        reason: decision.reason,
        source: decision.source,
        count,
      };
      // Only the 1st, 10th, 100th (and so on) rejection of a host is logged at info level.
      // The rest go to debug, so a flood from one host cannot flood the log.
      if (isLogMilestone(count)) {
        logger.info(
          "Rejected {method} {path} from suspended host {host} ({count} so far): {reason}",
          properties,
        );
      } else {
        logger.debug("Rejected {method} {path} from suspended host {host}: {reason}", properties);
      }
      // NOTE: the body never carries the rule's reason, because PolicyDecision has no flag
      // saying whether an administrator chose to publish it.
      return errorResponse(
        c,
        403,
        "domain_blocked",
        `This node does not accept federation requests from ${host}`,
      );
    }
    return undefined;
  }

  const inbox: MiddlewareHandler = async (c, next) => {
    if (c.req.method !== "POST" || !isInboxPath(c.req.path)) return await next();
    if (!hasSignatureHeaders(c.req.raw.headers)) return await next();

    const hosts = parseClaimedHosts(c.req.raw.headers);
    const [firstHost] = hosts;
    // Unparsable signature headers name no key that Fedify could fetch, so Fedify returns 401.
    if (firstHost === undefined) return await next();

    const at = now();
    const rejected = rejectSuspended(c, hosts, at);
    if (rejected) return rejected;

    const address = clientAddress(c) ?? UNKNOWN_ADDRESS;
    const result = limiter.take(firstHost, address, at.getTime());
    if (!result.allowed) {
      const count = countRejection(firstHost, "rate_limited", at);
      const properties = { host: firstHost, address, count, retryAfter: result.retryAfterSeconds };
      if (isLogMilestone(count)) {
        logger.info(
          "Rate limited inbox deliveries from {host} at {address} ({count} so far)",
          properties,
        );
      } else {
        logger.debug("Rate limited an inbox delivery from {host} at {address}", properties);
      }
      c.header("Retry-After", String(result.retryAfterSeconds));
      return errorResponse(
        c,
        429,
        "rate_limited",
        `Too many deliveries from ${firstHost} at this address; retry after ${result.retryAfterSeconds} seconds`,
      );
    }
    return await next();
  };

  // Authorized fetch is off, so Fedify serves documents to anyone and only a GET that a peer
  // chose to sign can be attributed to a host. An unsigned GET from a suspended host passes.
  const documents: MiddlewareHandler = async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return await next();
    if (!isActivityPubDocumentPath(c.req.path)) return await next();
    if (!hasSignatureHeaders(c.req.raw.headers)) return await next();

    const rejected = rejectSuspended(c, parseClaimedHosts(c.req.raw.headers), now());
    if (rejected) return rejected;
    return await next();
  };

  return {
    inbox,
    documents,
    stats: () => ({
      rejections: [...rejections.values()].map((entry) => ({ ...entry })),
      untrackedRejections,
    }),
  };
}

/** True for 1, 10, 100 and so on. */
function isLogMilestone(count: number): boolean {
  if (count < 1) return false;
  let rest = count;
  while (rest % 10 === 0) rest /= 10;
  return rest === 1;
}

/** Returns the remote address of the Node.js socket, or `undefined` outside `@hono/node-server`. */
export function socketAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch (error) {
    // `app.request()` has no socket bindings, so reading them raises a TypeError.
    if (error instanceof TypeError) return undefined;
    throw error;
  }
}
