/**
 * What domain code and the REST API may ask of the ActivityPub layer. The layer in `federation/`
 * implements it; nothing under `src/` imports Fedify.
 */
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
}

/** The target URL did not lead to an ActivityPub actor this node can follow. */
export class FederationLookupError extends Error {
  readonly target: string;

  constructor(target: string, reason: string) {
    super(`Cannot follow ${target}: ${reason}`);
    this.name = "FederationLookupError";
    this.target = target;
  }
}
