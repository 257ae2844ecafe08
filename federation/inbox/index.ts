import type { Federation } from "@fedify/fedify";
import { Accept, Create, Delete, Follow, Offer, Reject, Undo, Update } from "@fedify/vocab";
import { getNodeLogger } from "../../src/logging.ts";
import { onBridgeAccept, onBridgeOffer, onBridgeReject, onBridgeUndo } from "../bridges.ts";
import { PATHS } from "../paths.ts";
import { onCreate, onDelete, onUpdate } from "./catalogue.ts";
import type { InboxDependencies } from "./context.ts";
import { onAccept, onFollow, onReject, onUndo } from "./follows.ts";

const logger = getNodeLogger("federation", "inbox");

/** Registers one listener per activity type the node understands; others are accepted and dropped. */
export function registerInboxListeners(
  federation: Federation<void>,
  deps: InboxDependencies,
): void {
  federation
    .setInboxListeners(PATHS.inbox, PATHS.sharedInbox)
    .on(Follow, (ctx, activity) => onFollow(deps, ctx, activity))
    .on(Undo, async (ctx, activity) => {
      if (await onBridgeUndo(deps, activity, activity.objectId?.href)) return;
      await onUndo(deps, ctx, activity);
    })
    .on(Accept, async (ctx, activity) => {
      if (await onBridgeAccept(deps, activity)) return;
      await onAccept(deps, ctx, activity);
    })
    .on(Reject, async (ctx, activity) => {
      if (await onBridgeReject(deps, activity)) return;
      await onReject(deps, ctx, activity);
    })
    .on(Offer, (ctx, activity) => onBridgeOffer(deps, ctx, activity))
    .on(Create, (ctx, activity) => onCreate(deps, ctx, activity))
    .on(Update, (ctx, activity) => onUpdate(deps, ctx, activity))
    .on(Delete, (ctx, activity) => onDelete(deps, ctx, activity))
    .onError((_ctx, error) => {
      logger.error("Inbox listener failed: {error}", { error });
    })
    .setSharedKeyDispatcher(() => ({ identifier: "instance" }));
}
