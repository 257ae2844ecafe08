/** URL paths of the node's ActivityPub endpoints, in one place for dispatchers and docs. */
export const INSTANCE_ACTOR = "instance";

export const PATHS = {
  actor: "/ap/actors/{identifier}",
  inbox: "/ap/actors/{identifier}/inbox",
  sharedInbox: "/ap/inbox",
  outbox: "/ap/actors/{identifier}/outbox",
  followers: "/ap/actors/{identifier}/followers",
  unit: "/ap/units/{id}",
  nodeInfo: "/nodeinfo/2.1",
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** `host[:port]` of a URL in lower case: the unit federation state and policy key on. */
export function hostOf(url: URL | string): string {
  return new URL(url).host.toLowerCase();
}
