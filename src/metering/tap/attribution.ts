/**
 * Attribution of local topics to the node's catalogue: UnitNode id → Unit id → Repo id, read from
 * the `unit_nodes` and `units` tables. A cache keeps them, so the tap queries PostgreSQL once per
 * refresh and once per batch of new ids rather than once per topic.
 */
import { eq, inArray } from "drizzle-orm";
import type { DatabaseLike } from "../../db/client.ts";
import { unitNodes, units } from "../../db/schema/index.ts";
import { getNodeLogger } from "../../logging.ts";

const logger = getNodeLogger("metering", "tap", "attribution");

export interface AttributionCacheOptions {
  /** Milliseconds between two full reloads; 5 minutes by default. */
  refreshIntervalMs?: number;
  /** Milliseconds an id that was not found is not looked up again; 60 seconds by default. */
  missTtlMs?: number;
  /** Ids per lookup query; 1000 by default. */
  lookupBatchSize?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface Attribution {
  unitNodeId: string | null;
  unitId: string | null;
  repoId: string | null;
}

const NO_ATTRIBUTION: Attribution = { unitNodeId: null, unitId: null, repoId: null };

/**
 * Cache of the catalogue's UnitNode → Unit → Repo links.
 *
 * A full reload runs at the first {@link prepare} and then every `refreshIntervalMs`. Ids that the
 * cache does not hold are looked up in batches during {@link prepare}; an id that is still not
 * found is remembered as a miss for `missTtlMs`, so unknown UUIDs published at a high rate cost
 * one query per id and minute at most. A UnitNode or Unit that is deleted stays in the cache until
 * the next full reload, which keeps counts of its last minutes attributed.
 */
export class AttributionCache {
  readonly #db: DatabaseLike;
  readonly #refreshIntervalMs: number;
  readonly #missTtlMs: number;
  readonly #lookupBatchSize: number;
  readonly #now: () => number;
  #unitOfNode = new Map<string, string>();
  #repoOfUnit = new Map<string, string>();
  #misses = new Map<string, number>();
  #loadedAt: number | undefined;

  constructor(db: DatabaseLike, options: AttributionCacheOptions = {}) {
    this.#db = db;
    this.#refreshIntervalMs = options.refreshIntervalMs ?? 5 * 60_000;
    this.#missTtlMs = options.missTtlMs ?? 60_000;
    this.#lookupBatchSize = options.lookupBatchSize ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  /** Numbers of cached UnitNodes, Units and remembered misses. */
  get size(): { unitNodes: number; units: number; misses: number } {
    return {
      unitNodes: this.#unitOfNode.size,
      units: this.#repoOfUnit.size,
      misses: this.#misses.size,
    };
  }

  /**
   * Reloads the cache when due and looks up the given ids that it does not hold. Throws when
   * PostgreSQL fails; the cache keeps what it had.
   */
  async prepare(unitNodeIds: Iterable<string>, unitIds: Iterable<string>): Promise<void> {
    const now = this.#now();
    if (this.#loadedAt === undefined || now - this.#loadedAt >= this.#refreshIntervalMs) {
      await this.#reload(now);
    }

    const missingNodes = [...new Set(unitNodeIds)].filter(
      (id) => !this.#unitOfNode.has(id) && !this.#isRecentMiss(id, now),
    );
    for (const chunk of chunks(missingNodes, this.#lookupBatchSize)) {
      const rows = await this.#db
        .select({ id: unitNodes.id, unitId: unitNodes.unitId, repoId: units.repoId })
        .from(unitNodes)
        .innerJoin(units, eq(units.id, unitNodes.unitId))
        .where(inArray(unitNodes.id, chunk));
      for (const row of rows) {
        this.#unitOfNode.set(row.id, row.unitId);
        this.#repoOfUnit.set(row.unitId, row.repoId);
      }
      this.#rememberMisses(chunk, this.#unitOfNode, now);
    }

    const missingUnits = [...new Set(unitIds)].filter(
      (id) => !this.#repoOfUnit.has(id) && !this.#isRecentMiss(id, now),
    );
    for (const chunk of chunks(missingUnits, this.#lookupBatchSize)) {
      const rows = await this.#db
        .select({ id: units.id, repoId: units.repoId })
        .from(units)
        .where(inArray(units.id, chunk));
      for (const row of rows) this.#repoOfUnit.set(row.id, row.repoId);
      this.#rememberMisses(chunk, this.#repoOfUnit, now);
    }
  }

  /** Attribution of a UnitNode topic; all null when the UnitNode is not known. */
  forUnitNode(unitNodeId: string): Attribution {
    const unitId = this.#unitOfNode.get(unitNodeId);
    if (unitId === undefined) return NO_ATTRIBUTION;
    return { unitNodeId, unitId, repoId: this.#repoOfUnit.get(unitId) ?? null };
  }

  /** Attribution of a Unit's system topic; all null when the Unit is not known. */
  forUnit(unitId: string): Attribution {
    const repoId = this.#repoOfUnit.get(unitId);
    if (repoId === undefined) return NO_ATTRIBUTION;
    return { unitNodeId: null, unitId, repoId };
  }

  async #reload(now: number): Promise<void> {
    // Units come from their own query too, because a Unit without UnitNodes still has system
    // topics. The join keeps each UnitNode's Repo consistent with its Unit.
    const nodeRows = await this.#db
      .select({ id: unitNodes.id, unitId: unitNodes.unitId, repoId: units.repoId })
      .from(unitNodes)
      .innerJoin(units, eq(units.id, unitNodes.unitId));
    const unitRows = await this.#db.select({ id: units.id, repoId: units.repoId }).from(units);
    this.#unitOfNode = new Map(nodeRows.map((row) => [row.id, row.unitId]));
    this.#repoOfUnit = new Map(unitRows.map((row) => [row.id, row.repoId]));
    for (const row of nodeRows) this.#repoOfUnit.set(row.unitId, row.repoId);
    for (const [id, expiresAt] of this.#misses) {
      if (expiresAt <= now || this.#unitOfNode.has(id) || this.#repoOfUnit.has(id)) {
        this.#misses.delete(id);
      }
    }
    this.#loadedAt = now;
    logger.debug("Loaded {unitNodes} UnitNodes and {units} Units for attribution", {
      unitNodes: nodeRows.length,
      units: unitRows.length,
    });
  }

  #isRecentMiss(id: string, now: number): boolean {
    const expiresAt = this.#misses.get(id);
    if (expiresAt === undefined) return false;
    if (expiresAt > now) return true;
    this.#misses.delete(id);
    return false;
  }

  #rememberMisses(ids: string[], found: Map<string, string>, now: number): void {
    for (const id of ids) {
      if (!found.has(id)) this.#misses.set(id, now + this.#missTtlMs);
    }
  }
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) {
    yield items.slice(start, start + size);
  }
}
