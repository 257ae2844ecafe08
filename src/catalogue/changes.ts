import type { DatabaseLike } from "../db/client.ts";
import { type CatalogueEntityKind, catalogueChanges } from "../db/schema/index.ts";

/**
 * Records that a local Repo or Unit changed (created, updated, deleted, or its visibility or
 * nodes changed). Call it inside the transaction that made the change.
 */
export async function recordCatalogueChange(
  db: DatabaseLike,
  entityKind: CatalogueEntityKind,
  entityId: string,
): Promise<void> {
  await db.insert(catalogueChanges).values({ entityKind, entityId });
}
