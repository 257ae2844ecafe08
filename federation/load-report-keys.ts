/**
 * Keys of load reports. Reports are signed with the instance actor's Ed25519 key, the one the
 * actor document lists under `assertionMethod` as a Multikey. Verifiers fetch that key by its
 * id over HTTP. A node uses Fedify's document loader, which rejects private addresses unless
 * `PU_NODE_ALLOW_PRIVATE_ADDRESS` is set. The admin CLI's `reports verify` passes its own
 * loaders, which fetch only from the issuer's origin.
 */
import type { webcrypto } from "node:crypto";
import { fetchKeyDetailed } from "@fedify/fedify";
import { type DocumentLoader, Multikey } from "@fedify/vocab";
import type { Database } from "../src/db/client.ts";
import type { ReportSigningKey } from "../src/reports/chain.ts";
import { getActorKeyPairs } from "./keys.ts";
import { INSTANCE_ACTOR, PATHS } from "./paths.ts";
import type { NodeFederation } from "./setup.ts";

/**
 * Fedify 2.3 lists an actor's keys under `assertionMethod` as Multikeys with the ids
 * `#multikey-<n>`, numbered from 1 in the order of the key pairs dispatcher's list.
 * `getActorKeyPairs` returns RSA first and Ed25519 second.
 */
const ED25519_POSITION = 2;

export function instanceReportKeyId(origin: URL): URL {
  const actor = new URL(PATHS.actor.replace("{identifier}", INSTANCE_ACTOR), origin);
  return new URL(`#multikey-${ED25519_POSITION}`, actor);
}

/** Loads the instance actor's Ed25519 private key with its key id. */
export async function loadReportSigningKey(db: Database, origin: URL): Promise<ReportSigningKey> {
  const pairs = await getActorKeyPairs(db, INSTANCE_ACTOR);
  const pair = pairs[ED25519_POSITION - 1];
  if (pair?.privateKey.algorithm.name !== "Ed25519") {
    throw new Error(
      `The instance actor's key number ${ED25519_POSITION} is not Ed25519; load reports cannot be signed`,
    );
  }
  return { privateKey: pair.privateKey, kid: instanceReportKeyId(origin).href };
}

/**
 * Fetches the public key `kid` of a remote instance actor through the federation's loaders.
 * Throws when the actor does not list an Ed25519 Multikey with that id.
 */
export async function fetchReportKey(
  federation: NodeFederation,
  origin: URL,
  kid: URL,
): Promise<webcrypto.CryptoKey> {
  const ctx = federation.createContext(origin, undefined);
  return await fetchReportKeyWithLoaders(kid, {
    documentLoader: ctx.documentLoader,
    contextLoader: ctx.contextLoader,
  });
}

/** Loaders of JSON-LD documents and contexts, as a Fedify context or the admin CLI has them. */
export interface ReportKeyLoaders {
  documentLoader: DocumentLoader;
  contextLoader: DocumentLoader;
}

/**
 * Fetches the public key `kid` of a remote instance actor with the given loaders. Throws when
 * the document cannot be fetched, with the loader's reason, or when the actor does not list an
 * Ed25519 Multikey with that id.
 */
export async function fetchReportKeyWithLoaders(
  kid: URL,
  loaders: ReportKeyLoaders,
): Promise<webcrypto.CryptoKey> {
  const { key, fetchError } = await fetchKeyDetailed(kid, Multikey, loaders);
  if (key === null) {
    let reason = "";
    if (fetchError !== undefined && "status" in fetchError) {
      reason = ` (HTTP ${fetchError.status})`;
    } else if (fetchError !== undefined) {
      reason = ` (${fetchError.error.message})`;
    }
    throw new Error(
      `No Multikey ${kid.href} found${reason}; check that the report's issuer serves its instance actor`,
    );
  }
  if (key.publicKey.algorithm.name !== "Ed25519") {
    throw new Error(`Key ${kid.href} is ${key.publicKey.algorithm.name}, not Ed25519`);
  }
  return key.publicKey;
}
