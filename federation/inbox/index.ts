import type { Federation, InboxContext } from "@fedify/fedify";
import {
  Accept,
  type Activity,
  Create,
  Delete,
  Follow,
  Offer,
  Reject,
  Undo,
  Update,
} from "@fedify/vocab";
import { getNodeLogger } from "../../src/logging.ts";
import { SuspendedHostError } from "../../src/policy/outbound.ts";
import { onBridgeAccept, onBridgeOffer, onBridgeReject, onBridgeUndo } from "../bridges.ts";
import { PATHS } from "../paths.ts";
import { onCreate, onDelete, onUpdate } from "./catalogue.ts";
import type { InboxDependencies } from "./context.ts";
import { onAccept, onFollow, onReject, onUndo } from "./follows.ts";

const logger = getNodeLogger("federation", "inbox");

/**
 * Runs a listener and drops the activity when it names an object or actor on a suspended host:
 * the guarded loaders raise {@link SuspendedHostError} instead of fetching it. The sender gets
 * 202, because a retry would get the same result.
 */
function skippingSuspended<A extends Activity>(
  listener: (ctx: InboxContext<void>, activity: A) => Promise<void>,
) {
  return async (ctx: InboxContext<void>, activity: A): Promise<void> => {
    try {
      await listener(ctx, activity);
    } catch (error) {
      if (!(error instanceof SuspendedHostError)) throw error;
      logger.info("Dropped {activityId}: it refers to {url} on suspended host {host}", {
        activityId: activity.id?.href,
        url: error.url,
        host: error.host,
      });
    }
  };
}

/** Registers one listener per activity type the node understands; others are accepted and dropped. */
export function registerInboxListeners(
  federation: Federation<void>,
  deps: InboxDependencies,
): void {
  federation
    .setInboxListeners(PATHS.inbox, PATHS.sharedInbox)
    .on(
      Follow,
      skippingSuspended((ctx, activity) => onFollow(deps, ctx, activity)),
    )
    .on(
      Undo,
      skippingSuspended(async (ctx, activity) => {
        if (await onBridgeUndo(deps, activity, activity.objectId?.href)) return;
        await onUndo(deps, ctx, activity);
      }),
    )
    .on(Accept, async (ctx, activity) => {
      if (await onBridgeAccept(deps, activity)) return;
      await onAccept(deps, ctx, activity);
    })
    .on(Reject, async (ctx, activity) => {
      if (await onBridgeReject(deps, activity)) return;
      await onReject(deps, ctx, activity);
    })
    .on(
      Offer,
      skippingSuspended((ctx, activity) => onBridgeOffer(deps, ctx, activity)),
    )
    .on(
      Create,
      skippingSuspended((ctx, activity) => onCreate(deps, ctx, activity)),
    )
    .on(
      Update,
      skippingSuspended((ctx, activity) => onUpdate(deps, ctx, activity)),
    )
    .on(
      Delete,
      skippingSuspended((ctx, activity) => onDelete(deps, ctx, activity)),
    )
    .onError((_ctx, error) => {
      logger.error("Inbox listener failed: {error}", { error });
    })
    .setSharedKeyDispatcher(() => ({ identifier: "instance" }));
}
