/**
 * Export grants on EMQX 5.8: one user of the built-in database authenticator per grant, and
 * built-in database authorization rules for that username that allow subscribing to the grant's
 * topics and deny everything else.
 */
import type { Logger } from "@logtape/logtape";
import {
  type ExportGrant,
  InvalidBridgeError,
  OWNED_RESOURCE_PREFIX,
  parseBridgeTopic,
} from "../driver.ts";
import { AUTHENTICATOR_ID, AUTHZ_SOURCE_TYPE, type AuthzRule, type EmqxBridgeApi } from "./api.ts";
import { differingFields, fingerprintSecrets } from "./resources.ts";

/** Raised when EMQX lacks a feature the driver needs. The message names what to enable. */
export class EmqxSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EmqxSetupError";
  }
}

/**
 * The maximum number of topics in one grant: EMQX 5.8 stores at most `max_rules` rules per
 * username (100 unless the operator changes it), and two of them are the closing deny rules.
 */
export const MAX_GRANT_TOPICS = 98;

export interface GrantChanges {
  created: string[];
  updated: string[];
  removed: string[];
}

export interface GrantContext {
  api: EmqxBridgeApi;
  localDomain: string;
  fingerprintKey: string;
  /** Password fingerprints by username, of the passwords this process has set. */
  passwordFingerprints: Map<string, string>;
  /** Warnings logged once per process, by text, so every apply does not repeat them. */
  loggedWarnings: Set<string>;
  logger: Logger;
}

/** Checks the grants before any request: owned usernames, local topics only, no duplicates. */
export function checkGrants(grants: readonly ExportGrant[], localDomain: string): void {
  const usernames = new Set<string>();
  for (const grant of grants) {
    if (grant.username === undefined || !grant.username.startsWith(OWNED_RESOURCE_PREFIX)) {
      throw new InvalidBridgeError(
        `Grant ${grant.id} has username ${JSON.stringify(grant.username)}; it must start with ${OWNED_RESOURCE_PREFIX} so the driver can tell its users from the operator's`,
      );
    }
    if (grantIdFromUsername(grant.username) !== grant.id) {
      throw new InvalidBridgeError(
        `Grant ${grant.id} has username ${grant.username}, which does not contain the grant id; the driver reads grant ids back from usernames`,
      );
    }
    if (usernames.has(grant.username)) {
      throw new InvalidBridgeError(`Two grants use the username ${grant.username}`);
    }
    usernames.add(grant.username);
    if (grant.password === "") {
      throw new InvalidBridgeError(`Grant ${grant.id} has an empty password`);
    }
    if (grant.topics.length === 0 || grant.topics.length > MAX_GRANT_TOPICS) {
      throw new InvalidBridgeError(
        `Grant ${grant.id} has ${grant.topics.length} topics; it needs 1 to ${MAX_GRANT_TOPICS}`,
      );
    }
    for (const topic of grant.topics) {
      if (parseBridgeTopic(topic).domain !== localDomain) {
        throw new InvalidBridgeError(
          `Grant ${grant.id} cannot export ${topic}: only topics of ${localDomain} may go out of this broker, so foreign topics are never sent on`,
        );
      }
    }
  }
}

/**
 * Reads the grant id back from a username: the last UUID in it, with or without dashes, or
 * undefined when there is none.
 */
export function grantIdFromUsername(username: string): string | undefined {
  const matches = [
    ...username.matchAll(
      /([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})/g,
    ),
  ];
  const last = matches.at(-1);
  return last === undefined ? undefined : last.slice(1).join("-");
}

/** Builds the authorization rules of a grant, in the order EMQX checks them. */
export function grantRules(grant: ExportGrant): AuthzRule[] {
  return [
    ...[...grant.topics]
      .sort()
      .map((topic): AuthzRule => ({ topic, permission: "allow", action: "subscribe" })),
    // `#` does not match topics that start with `$`, so `$SYS/#` needs its own rule.
    { topic: "#", permission: "deny", action: "all" },
    { topic: "$SYS/#", permission: "deny", action: "all" },
  ];
}

/** Makes the owned users and their rules match `grants`, which must be checked. */
export async function reconcileGrants(
  grants: readonly ExportGrant[],
  context: GrantContext,
): Promise<GrantChanges> {
  const changes: GrantChanges = { created: [], updated: [], removed: [] };
  const { api, logger } = context;
  const ready = await checkEmqxSetup(context, grants.length > 0);
  if (!ready) return changes;

  const users = new Set(
    (await api.listUsers(OWNED_RESOURCE_PREFIX)).filter((id) =>
      id.startsWith(OWNED_RESOURCE_PREFIX),
    ),
  );
  const ruleSets = new Map(
    (await api.listUserRules(OWNED_RESOURCE_PREFIX))
      .filter((entry) => entry.username.startsWith(OWNED_RESOURCE_PREFIX))
      .map((entry) => [entry.username, entry.rules]),
  );

  for (const grant of grants) {
    let created = false;
    let updated = false;

    // Rules go in before the user exists, so the user is never without them.
    const rules = grantRules(grant);
    const currentRules = ruleSets.get(grant.username);
    if (currentRules === undefined) {
      await api.createUserRules(grant.username, rules);
      updated = true;
    } else if (differingFields(rules, currentRules).length > 0) {
      await api.updateUserRules(grant.username, rules);
      updated = true;
    }

    const fingerprint = fingerprintSecrets(context.fingerprintKey, [grant.password]);
    if (!users.has(grant.username)) {
      await api.createUser(grant.username, grant.password);
      created = true;
    } else if (context.passwordFingerprints.get(grant.username) !== fingerprint) {
      // NOTE: EMQX never returns passwords, so after a restart of the node the first apply sets
      // every grant's password once more, to the same value when nothing changed.
      await api.updateUserPassword(grant.username, grant.password);
      updated = true;
    }
    context.passwordFingerprints.set(grant.username, fingerprint);

    if (created) changes.created.push(grant.id);
    else if (updated) changes.updated.push(grant.id);
    if (created || updated) {
      logger.info("Applied export grant {grantId} for {username} on EMQX", {
        grantId: grant.id,
        username: grant.username,
        created,
      });
    }
  }

  const desired = new Set(grants.map((grant) => grant.username));
  for (const username of [...new Set([...users, ...ruleSets.keys()])].sort()) {
    if (desired.has(username)) continue;
    // The user goes first, so no client logs in while its rules are being deleted.
    if (users.has(username)) await api.deleteUser(username);
    if (ruleSets.has(username)) await api.deleteUserRules(username);
    context.passwordFingerprints.delete(username);
    const grantId = grantIdFromUsername(username) ?? username;
    changes.removed.push(grantId);
    logger.info("Removed export grant {grantId} for {username} from EMQX", { grantId, username });
  }
  return changes;
}

/**
 * Checks that the built-in database authenticator and authorization source exist and are
 * enabled. Returns false when they are missing and no grant is desired, because then the node
 * cannot own any user. Throws {@link EmqxSetupError} when a grant needs them.
 */
async function checkEmqxSetup(context: GrantContext, grantsDesired: boolean): Promise<boolean> {
  const { api, logger } = context;
  const authenticatorEnabled = await api.authenticatorEnabled();
  const sources = await api.listAuthzSources();
  const source = sources.find((candidate) => candidate.type === AUTHZ_SOURCE_TYPE);
  if (authenticatorEnabled === undefined || source === undefined) {
    if (!grantsDesired) return false;
    const missing = [
      authenticatorEnabled === undefined
        ? `the authenticator ${AUTHENTICATOR_ID} (Access Control > Authentication > Create, Password-Based, Built-in Database)`
        : undefined,
      source === undefined
        ? `the authorization source ${AUTHZ_SOURCE_TYPE} (Access Control > Authorization > Create, Built-in Database)`
        : undefined,
    ].filter((item) => item !== undefined);
    throw new EmqxSetupError(
      `EMQX lacks ${missing.join(" and ")}, which export grants need; create ${missing.length > 1 ? "them" : "it"} in EMQX and apply again`,
    );
  }
  if (grantsDesired && (!authenticatorEnabled || !source.enable)) {
    throw new EmqxSetupError(
      `EMQX has ${!authenticatorEnabled ? `the authenticator ${AUTHENTICATOR_ID}` : `the authorization source ${AUTHZ_SOURCE_TYPE}`} disabled, which export grants need; enable it in EMQX and apply again`,
    );
  }
  const earlier = sources
    .slice(0, sources.indexOf(source))
    .filter((candidate) => candidate.enable)
    .map((candidate) => candidate.type);
  const warning = `authorization sources before ${AUTHZ_SOURCE_TYPE}: ${earlier.join(",")}`;
  if (grantsDesired && earlier.length > 0 && !context.loggedWarnings.has(warning)) {
    context.loggedWarnings.add(warning);
    // EMQX stops at the first source with a matching rule, and the default `file` source ends
    // with `{allow, all}`, so an earlier source can allow what a grant's rules deny.
    logger.warn(
      "EMQX checks the authorization sources {sources} before {source}, so they may allow export users more than their grants; move {source} to the top",
      { sources: earlier, source: AUTHZ_SOURCE_TYPE },
    );
  }
  return true;
}
