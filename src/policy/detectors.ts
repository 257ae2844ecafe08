/**
 * Ban detectors: Hono middleware that reads the status of every inbox POST response and counts,
 * per claimed host, the responses that mark a misbehaving sender:
 *
 * - `inbound_rate`: 429 `rate_limited` responses of the policy gate;
 * - `signature_failures`: 401 responses, which Fedify 2.3 returns when a signature is missing or
 *   invalid or its key cannot be fetched;
 * - `invalid_payloads`: 400, 413 and 415 responses of the body limit, the inbox guard and Fedify.
 *
 * The claimed host is the one the signature headers name (see `claimed-host.ts`), in canonical
 * form without port; requests without a parsable claim are not counted. When a host's count
 * reaches its threshold within the window, the detector reports one violation with the evidence
 * and starts counting that host from zero. Nothing touches the database per request.
 *
 * Counts are per process: with several `web` processes each one counts its own share of the
 * traffic, so a host is banned once any single process sees the threshold.
 *
 * NOTE: the claimed host is not verified, so a sender that names another server's host in its
 * key id can get that server banned. The evidence keeps the client address of each sample so
 * that an administrator can tell.
 */
import type { Context, MiddlewareHandler } from "hono";
import { isInboxPath } from "../../federation/inbox-guard.ts";
import type { BanThreshold, BanThresholds } from "../config.ts";
import { getNodeLogger } from "../logging.ts";
import type { Violation, ViolationCondition } from "./bans-types.ts";
import { parseClaimedHost } from "./claimed-host.ts";
import { DEFAULT_MAX_KEYS, SlidingWindowCounter } from "./detectors-window.ts";
import { canonicalHost, InvalidHostError } from "./domain.ts";
import { socketAddress } from "./gate.ts";

const logger = getNodeLogger("policy", "detectors");

/** The conditions measured at the inbox. */
export type InboxCondition = Extract<
  ViolationCondition,
  "inbound_rate" | "signature_failures" | "invalid_payloads"
>;

/** One counted inbox response, as kept in a ban's evidence. */
export interface InboxSample {
  at: string;
  status: number;
  path: string;
  /** The host as the signature claimed it, port included. */
  claimedHost: string;
  address: string | null;
}

export interface InboxDetectorOptions {
  thresholds: Pick<BanThresholds, "rateLimited" | "signatureFailures" | "invalidPayloads">;
  /** Receives each violation once; normally `recordViolation` with the node's database. */
  report: (violation: Violation) => Promise<unknown>;
  /** Clock of the counts and the evidence; tests pass a movable one. */
  now?: () => Date;
  /** The client IP of a request; the socket's remote address by default. */
  clientAddress?: (c: Context) => string | undefined;
  /** Bound on tracked hosts per condition. */
  maxHosts?: number;
}

export interface InboxDetectors {
  /** Register before the body limit and the policy gate, so it also counts their responses. */
  middleware: MiddlewareHandler;
  /** Waits until every violation reported so far has been handled; for tests and shutdown. */
  settled(): Promise<void>;
}

/** Returns the condition that an inbox response with `status` counts towards, if any. */
export function conditionOfStatus(status: number): InboxCondition | undefined {
  if (status === 429) return "inbound_rate";
  if (status === 401) return "signature_failures";
  if (status === 400 || status === 413 || status === 415) return "invalid_payloads";
  return undefined;
}

/** Builds the detectors; a threshold with a count of 0 is off. */
export function createInboxDetectors(options: InboxDetectorOptions): InboxDetectors {
  const now = options.now ?? (() => new Date());
  const clientAddress = options.clientAddress ?? socketAddress;
  const maxKeys = options.maxHosts ?? DEFAULT_MAX_KEYS;
  const counters = new Map<InboxCondition, SlidingWindowCounter<InboxSample>>();
  const add = (condition: InboxCondition, threshold: BanThreshold) => {
    if (threshold.count === 0) return;
    counters.set(
      condition,
      new SlidingWindowCounter({
        limit: threshold.count,
        windowMs: threshold.windowSeconds * 1000,
        maxKeys,
      }),
    );
  };
  add("inbound_rate", options.thresholds.rateLimited);
  add("signature_failures", options.thresholds.signatureFailures);
  add("invalid_payloads", options.thresholds.invalidPayloads);

  const pending = new Set<Promise<void>>();

  function report(violation: Violation): void {
    const reporting = options
      .report(violation)
      .then(
        () => undefined,
        (error: unknown) => {
          logger.error("Failed to record a {condition} violation of {host}: {error}", {
            condition: violation.condition,
            host: violation.subject.domain,
            error,
          });
        },
      )
      .finally(() => {
        pending.delete(reporting);
      });
    pending.add(reporting);
  }

  const middleware: MiddlewareHandler = async (c, next) => {
    if (c.req.method !== "POST" || !isInboxPath(c.req.path)) return await next();
    await next();

    const condition = conditionOfStatus(c.res.status);
    if (condition === undefined) return;
    const counter = counters.get(condition);
    if (counter === undefined) return;
    const claimedHost = parseClaimedHost(c.req.raw.headers);
    if (claimedHost === undefined) return;
    let host: string;
    try {
      host = canonicalHost(claimedHost);
    } catch (error) {
      if (error instanceof InvalidHostError) return;
      throw error;
    }

    const at = now();
    const crossing = counter.add(host, at.getTime(), {
      at: at.toISOString(),
      status: c.res.status,
      path: c.req.path,
      claimedHost,
      address: clientAddress(c) ?? null,
    });
    if (crossing === undefined) return;

    const windowSeconds = counter.windowMs / 1000;
    logger.info(
      "Host {host} reached {count} {condition} responses within {windowSeconds} s; recording a violation",
      { host, count: crossing.count, condition, windowSeconds },
    );
    report({
      subject: { kind: "domain", domain: host },
      condition,
      evidence: {
        count: crossing.count,
        windowSeconds,
        limit: counter.limit,
        firstSeenAt: new Date(crossing.firstAt).toISOString(),
        lastSeenAt: new Date(crossing.lastAt).toISOString(),
        samples: crossing.samples.map((sample) => ({ ...sample })),
        scope: "one web process",
      },
      now: at,
    });
  };

  return {
    middleware,
    settled: async () => {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}
