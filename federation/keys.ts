/**
 * Key pairs of this node's actors, generated on first use and kept in `actor_keys`. Each actor
 * has an RSA key (HTTP Signatures, both draft-cavage and RFC 9421) and an Ed25519 key (Object
 * Integrity Proofs), as Fedify recommends.
 */
import type { webcrypto } from "node:crypto";
import { exportJwk, generateCryptoKeyPair, importJwk } from "@fedify/fedify";
import { and, eq } from "drizzle-orm";
import type { Database } from "../src/db/client.ts";
import { actorKeys } from "../src/db/schema/index.ts";
import { getNodeLogger } from "../src/logging.ts";

const logger = getNodeLogger("federation", "keys");

const ALGORITHMS = ["RSASSA-PKCS1-v1_5", "Ed25519"] as const;
type Algorithm = (typeof ALGORITHMS)[number];

/** Loads the actor's key pairs, generating and storing the missing ones. */
export async function getActorKeyPairs(
  db: Database,
  actorIdentifier: string,
): Promise<webcrypto.CryptoKeyPair[]> {
  const rows = await db
    .select()
    .from(actorKeys)
    .where(eq(actorKeys.actorIdentifier, actorIdentifier));
  const pairs: webcrypto.CryptoKeyPair[] = [];
  for (const algorithm of ALGORITHMS) {
    const row = rows.find((candidate) => candidate.algorithm === algorithm);
    if (row) {
      pairs.push({
        privateKey: await importJwk(row.privateKey, "private"),
        publicKey: await importJwk(row.publicKey, "public"),
      });
    } else {
      pairs.push(await createKeyPair(db, actorIdentifier, algorithm));
    }
  }
  return pairs;
}

async function createKeyPair(
  db: Database,
  actorIdentifier: string,
  algorithm: Algorithm,
): Promise<webcrypto.CryptoKeyPair> {
  const generated = await generateCryptoKeyPair(algorithm);
  await db
    .insert(actorKeys)
    .values({
      actorIdentifier,
      algorithm,
      privateKey: await exportJwk(generated.privateKey),
      publicKey: await exportJwk(generated.publicKey),
    })
    .onConflictDoNothing();
  // Two requests may generate keys for the same actor at once; the stored pair wins.
  const [stored] = await db
    .select()
    .from(actorKeys)
    .where(and(eq(actorKeys.actorIdentifier, actorIdentifier), eq(actorKeys.algorithm, algorithm)));
  if (!stored) throw new Error(`Key pair for ${actorIdentifier} was not stored`);
  logger.info("Generated {algorithm} key pair for actor {actorIdentifier}", {
    algorithm,
    actorIdentifier,
  });
  return {
    privateKey: await importJwk(stored.privateKey, "private"),
    publicKey: await importJwk(stored.publicKey, "public"),
  };
}

/** Deletes the stored keys of a Repo actor whose Repo is gone. */
export async function deleteActorKeys(db: Database, actorIdentifier: string): Promise<void> {
  await db.delete(actorKeys).where(eq(actorKeys.actorIdentifier, actorIdentifier));
}
