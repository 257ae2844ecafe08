/**
 * Outbound side of federation policy: the node neither delivers to nor fetches from a
 * suspended host. Fedify's `createFederation()` throws a TypeError when custom loader
 * factories are combined with `allowPrivateAddress` or `userAgent` (Fedify 2.3.6,
 * `FederationImpl` constructor), and the node sets both. So instead of replacing Fedify's loaders, these helpers wrap them at the call
 * sites and filter deliveries at two points:
 *
 * - {@link sendActivityToAllowed} drops suspended recipients before `ctx.sendActivity`;
 * - {@link filterQueuedDeliveries} wraps the outbox queue, so deliveries to `"followers"`,
 *   fan-outs and retries queued before a suspension are dropped when a worker picks them up.
 *
 * Only `suspend` decisions block traffic; `reject_content` hosts still get deliveries.
 */
import type { Context, MessageQueue } from "@fedify/fedify";
import type {
  Activity,
  Object as ActivityPubObject,
  DocumentLoader,
  LookupObjectOptions,
  Recipient,
} from "@fedify/vocab";
import { getNodeLogger } from "../logging.ts";
import type { PolicyDecision, PolicyEngine } from "./types.ts";

const logger = getNodeLogger("policy", "outbound");

/** Raised by a guarded document loader instead of fetching from a suspended host. */
export class SuspendedHostError extends Error {
  readonly url: string;
  readonly host: string;
  readonly reason: string;

  constructor(url: string, host: string, reason: string) {
    super(`Not fetching ${url}: host ${host} is suspended (${reason})`);
    this.name = "SuspendedHostError";
    this.url = url;
    this.host = host;
    this.reason = reason;
  }
}

/** A `suspend` decision together with the host it applies to. */
export type Suspension = Exclude<PolicyDecision, { action: "allow" }> & { host: string };

/** Returns the suspension that applies to the host of `url`, if any. Unparsable URLs have none. */
export function findSuspension(
  engine: PolicyEngine,
  url: URL | string,
  now: Date = new Date(),
): Suspension | undefined {
  let host: string;
  try {
    host = (typeof url === "string" ? new URL(url) : url).host;
  } catch {
    return undefined;
  }
  if (host === "") return undefined;
  const decision = engine.decide(host, now);
  return decision.action === "suspend" ? { ...decision, host } : undefined;
}

/**
 * Wraps a Fedify document or context loader so that it rejects with
 * {@link SuspendedHostError} instead of fetching from a suspended host.
 *
 * NOTE: the wrapped loader follows redirects itself. A redirect from an allowed host to a
 * suspended one is therefore requested before this wrapper sees the final URL
 * (`documentUrl`), and only the document is discarded.
 */
export function guardDocumentLoader(loader: DocumentLoader, engine: PolicyEngine): DocumentLoader {
  return async (url, options) => {
    const before = findSuspension(engine, url);
    if (before) throw new SuspendedHostError(url, before.host, before.reason);

    const document = await loader(url, options);
    const after = findSuspension(engine, document.documentUrl);
    if (after) throw new SuspendedHostError(document.documentUrl, after.host, after.reason);
    return document;
  };
}

/**
 * Looks an object up like `ctx.lookupObject()`, but returns `null` without any request when
 * the identifier's host is suspended, and fetches through guarded loaders (the given ones, or
 * the context's). The host check comes first because `lookupObject` falls back to a WebFinger
 * request, which bypasses document loaders, when the loader throws.
 *
 * NOTE: `acct:` and `user@host` identifiers go through WebFinger on the named host; that host
 * is checked, but the WebFinger request itself cannot be guarded here.
 */
export async function lookupObjectIfAllowed<T>(
  ctx: Context<T>,
  engine: PolicyEngine,
  identifier: URL | string,
  options: LookupObjectOptions = {},
): Promise<ActivityPubObject | null> {
  const url = identifierUrl(identifier);
  const suspension = url === undefined ? undefined : findSuspension(engine, url);
  if (suspension) {
    logger.info("Skipped fetching {url}: host {host} is suspended ({reason})", {
      url: url?.href,
      host: suspension.host,
      reason: suspension.reason,
    });
    return null;
  }
  return await ctx.lookupObject(identifier, {
    ...options,
    documentLoader: guardDocumentLoader(options.documentLoader ?? ctx.documentLoader, engine),
    contextLoader: guardDocumentLoader(options.contextLoader ?? ctx.contextLoader, engine),
  });
}

/**
 * Returns a context's document and context loaders guarded by the policy, for `getActor()` and
 * `getObject()` of received activities, which would otherwise fetch from any host named inside.
 */
export function guardedLoaders<T>(
  ctx: Context<T>,
  engine: PolicyEngine,
): { documentLoader: DocumentLoader; contextLoader: DocumentLoader } {
  return {
    documentLoader: guardDocumentLoader(ctx.documentLoader, engine),
    contextLoader: guardDocumentLoader(ctx.contextLoader, engine),
  };
}

/** Returns the URL an identifier names: itself, or `https://host/` for `acct:` and `user@host`. */
function identifierUrl(identifier: URL | string): URL | undefined {
  if (identifier instanceof URL) return identifier;
  const handle = /^(?:acct:)?@?[^@\s/]+@([^@\s/]+)$/.exec(identifier);
  try {
    return handle?.[1] ? new URL(`https://${handle[1]}/`) : new URL(identifier);
  } catch {
    return undefined;
  }
}

/** Recipients split by policy; a recipient is dropped when any of its URLs is on a suspended host. */
export interface FilteredRecipients {
  allowed: Recipient[];
  dropped: { recipient: Recipient; host: string; reason: string }[];
}

export function filterRecipients(
  engine: PolicyEngine,
  recipients: Recipient | readonly Recipient[],
  now: Date = new Date(),
): FilteredRecipients {
  const result: FilteredRecipients = { allowed: [], dropped: [] };
  const list: readonly Recipient[] = Array.isArray(recipients) ? recipients : [recipients];
  for (const recipient of list) {
    const urls = [recipient.id, recipient.inboxId, recipient.endpoints?.sharedInbox];
    let suspension: ReturnType<typeof findSuspension>;
    for (const url of urls) {
      if (url) suspension ??= findSuspension(engine, url, now);
    }
    if (suspension) {
      result.dropped.push({ recipient, host: suspension.host, reason: suspension.reason });
    } else {
      result.allowed.push(recipient);
    }
  }
  return result;
}

type SendActivityArguments<T> = Parameters<Context<T>["sendActivity"]>;

/**
 * Sends `activity` through `ctx.sendActivity` to the recipients that are not on suspended
 * hosts, logs each dropped one, and returns them. When no recipient is left, nothing is sent.
 * The `"followers"` collection passes unfiltered, because Fedify expands it after this call;
 * {@link filterQueuedDeliveries} drops those deliveries.
 */
export async function sendActivityToAllowed<T>(
  ctx: Context<T>,
  engine: PolicyEngine,
  sender: SendActivityArguments<T>[0],
  recipients: Recipient | readonly Recipient[] | "followers",
  activity: Activity,
  options?: SendActivityArguments<T>[3],
): Promise<FilteredRecipients["dropped"]> {
  if (recipients === "followers") {
    await ctx.sendActivity(sender as { identifier: string }, "followers", activity, options);
    return [];
  }
  const { allowed, dropped } = filterRecipients(engine, recipients);
  for (const { recipient, host, reason } of dropped) {
    logger.info(
      "Dropped recipient {recipient} of {activityId}: host {host} is suspended ({reason})",
      {
        recipient: recipient.id?.href ?? recipient.inboxId?.href,
        activityId: activity.id?.href,
        host,
        reason,
      },
    );
  }
  if (allowed.length > 0) await ctx.sendActivity(sender, allowed, activity, options);
  return dropped;
}

/**
 * Wraps the queue that Fedify uses for outgoing deliveries. When a worker takes an `outbox`
 * message for an inbox on a suspended host, the wrapper drops it (acknowledged without
 * delivery). A `fanout` message loses its suspended inboxes. Other messages pass unchanged. Checking at delivery time, not at enqueue time, also stops retries and deliveries
 * queued before the host was suspended.
 *
 * NOTE: this reads the `type`, `inbox` and `inboxes` fields of Fedify 2.3's queue messages,
 * which Fedify documents as opaque. A message of another shape passes unfiltered, so check this
 * wrapper when upgrading Fedify.
 */
export function filterQueuedDeliveries(queue: MessageQueue, engine: PolicyEngine): MessageQueue {
  const wrapper: MessageQueue = {
    nativeRetrial: queue.nativeRetrial,
    enqueue: (message, options) => queue.enqueue(message, options),
    listen: (handler, options) =>
      queue.listen(async (message: unknown) => {
        const filtered = filterQueueMessage(message, engine);
        if (filtered !== undefined) await handler(filtered);
      }, options),
  };
  if (queue.enqueueMany) {
    const enqueueMany = queue.enqueueMany.bind(queue);
    wrapper.enqueueMany = (messages, options) => enqueueMany(messages, options);
  }
  if (queue.getDepth) wrapper.getDepth = queue.getDepth.bind(queue);
  return wrapper;
}

/** Returns the message to hand to Fedify, or `undefined` when nothing of it may be delivered. */
export function filterQueueMessage(message: unknown, engine: PolicyEngine): unknown {
  if (message === null || typeof message !== "object") return message;
  const fields = message as {
    type?: unknown;
    inbox?: unknown;
    inboxes?: unknown;
    activityId?: unknown;
  };

  if (fields.type === "outbox" && typeof fields.inbox === "string") {
    const suspension = findSuspension(engine, fields.inbox);
    if (!suspension) return message;
    logDroppedDelivery(fields.inbox, fields.activityId, suspension);
    return undefined;
  }

  if (fields.type === "fanout" && fields.inboxes !== null && typeof fields.inboxes === "object") {
    const inboxes: Record<string, unknown> = {};
    let droppedAny = false;
    for (const [inbox, value] of Object.entries(fields.inboxes)) {
      const suspension = findSuspension(engine, inbox);
      if (suspension) {
        logDroppedDelivery(inbox, fields.activityId, suspension);
        droppedAny = true;
      } else {
        inboxes[inbox] = value;
      }
    }
    if (!droppedAny) return message;
    if (Object.keys(inboxes).length === 0) return undefined;
    return { ...message, inboxes };
  }

  return message;
}

function logDroppedDelivery(inbox: string, activityId: unknown, suspension: Suspension) {
  logger.info("Dropped delivery of {activityId} to {inbox}: host {host} is suspended ({reason})", {
    activityId: typeof activityId === "string" ? activityId : undefined,
    inbox,
    host: suspension.host,
    reason: suspension.reason,
  });
}
