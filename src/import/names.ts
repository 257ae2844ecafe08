/**
 * Planning of unique names (user logins, Repo and Unit names). Names are unique on both sides,
 * but a run can apply renames in an order in which two mirrored rows briefly want the same name
 * (Pepeunit swapped two names, or renamed A to B's old name after renaming B). The plan decides
 * up front which incoming rows can take their name, so the writes never hit the unique index.
 */
import type { RowSource } from "../db/schema/index.ts";

export interface LocalNamedRow {
  id: string;
  name: string;
  source: RowSource;
}

export interface IncomingNamedRow {
  id: string;
  name: string;
}

export interface NamePlan {
  /** Incoming rows whose name stays taken, with the local row that keeps it. */
  blocked: Map<string, LocalNamedRow>;
  /**
   * Accepted rows that exist locally under another name. The caller moves them to a placeholder
   * name first, so that a name freed by one of them can be taken by another in the same run.
   */
  renamedIds: string[];
}

/**
 * Decides which incoming rows can take their names. A name is free when no local row has it, or
 * when the local row that has it is a mirrored row that this run renames to something else and
 * that is not itself blocked. Blocking one row can keep its old name taken and block another,
 * so the check repeats until nothing changes.
 *
 * @param local every row of the node's table, minus the rows this run deletes
 * @param incoming the source rows this run inserts or updates, after all other checks
 */
export function planUniqueNames(
  local: readonly LocalNamedRow[],
  incoming: readonly IncomingNamedRow[],
): NamePlan {
  const localById = new Map(local.map((row) => [row.id, row]));
  const holderByName = new Map(local.map((row) => [row.name, row]));
  const incomingById = new Map(incoming.map((row) => [row.id, row]));
  const blocked = new Map<string, LocalNamedRow>();

  const holderMovesAway = (holder: LocalNamedRow): boolean => {
    if (holder.source !== "pepeunit" || blocked.has(holder.id)) return false;
    const next = incomingById.get(holder.id);
    return next !== undefined && next.name !== holder.name;
  };

  let changed = true;
  while (changed) {
    changed = false;
    for (const row of incoming) {
      if (blocked.has(row.id)) continue;
      const holder = holderByName.get(row.name);
      if (!holder || holder.id === row.id || holderMovesAway(holder)) continue;
      blocked.set(row.id, holder);
      changed = true;
    }
  }

  const renamedIds = incoming
    .filter((row) => !blocked.has(row.id))
    .filter((row) => {
      const existing = localById.get(row.id);
      return existing !== undefined && existing.name !== row.name;
    })
    .map((row) => row.id);

  return { blocked, renamedIds };
}

/**
 * Returns a temporary name that no Pepeunit row can have, because Pepeunit names match
 * `[A-Za-z0-9_.-]{4,20}`.
 */
export function placeholderName(id: string): string {
  return `~pepeunit-import-rename~${id}`;
}
