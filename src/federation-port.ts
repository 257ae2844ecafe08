/**
 * What domain code and the REST API may ask of the ActivityPub layer. The layer in `federation/`
 * implements it; nothing under `src/` imports Fedify.
 */
import type { BridgeWithRoutes } from "./bridges/store.ts";

export interface FollowedInstance {
  actorIri: string;
  host: string;
  state: "pending" | "accepted" | "rejected";
}

export interface FederationPort {
  /**
   * Looks up the actor at `target` (an instance actor IRI or a node origin such as
   * `https://node.example.com`), records the follow as pending and sends a signed Follow.
   * Throws {@link FederationLookupError} when no usable actor is found at `target`.
   */
  followInstance(target: URL): Promise<FollowedInstance>;
  /** Sends Undo(Follow) and deletes the follow; returns false when it did not exist. */
  unfollowInstance(target: URL): Promise<boolean>;
  /**
   * Asks the instance at `target` to export the listed Output UnitNodes to this instance's
   * broker: stores the request and sends a signed Offer. Throws {@link FederationLookupError}
   * when the peer cannot be used and {@link BridgeRequestError} when a route is invalid.
   */
  requestBridge(target: URL, routes: readonly BridgeRequestRoute[]): Promise<BridgeWithRoutes>;
  /**
   * Ends a bridge from this side (Undo of the Offer on the importer, Reject on the exporter).
   * Returns undefined when no bridge has that id, and the bridge unchanged when it had ended.
   */
  endBridge(bridgeId: string, reason: string): Promise<BridgeWithRoutes | undefined>;
}

export interface BridgeRequestRoute {
  /** The peer's Output UnitNode. */
  unitNodeId: string;
  qos: 0 | 1;
  maxMps: number;
  /** This instance's Input UnitNode that the Output feeds, for the record. */
  inputUnitNodeId?: string | null;
}

/** A bridge request that names UnitNodes the peer does not publish as Outputs, or similar. */
export class BridgeRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BridgeRequestError";
  }
}

/** The target URL did not lead to an ActivityPub actor this node can follow or bridge with. */
export class FederationLookupError extends Error {
  readonly target: string;

  constructor(target: string, reason: string) {
    super(`Cannot look up ${target}: ${reason}`);
    this.name = "FederationLookupError";
    this.target = target;
  }
}
