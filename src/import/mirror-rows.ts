/**
 * The steps every mirrored entity shares: check each source row, plan unique names, then insert
 * or update the node's copy and count the outcome. Each entity supplies its table writes, its
 * extra checks and the catalogue changes it records.
 */
import type { RowSource } from "../db/schema/index.ts";
import type { MappingResult } from "./mapping.ts";
import { differingFields, type MirrorContext, skipRow } from "./mirror-context.ts";
import { type LocalNamedRow, placeholderName, planUniqueNames } from "./names.ts";
import type { ImportEntity, ImportSkip } from "./summary.ts";

/** Table writes and change records for the node's copy of one entity. */
export interface MirrorWriter<
  Row extends { id: string },
  Local,
  K extends keyof Row & keyof Local & string,
> {
  entity: ImportEntity;
  /** Columns compared to find changed rows. JSON columns are compared by content. */
  fields: readonly K[];
  insert(row: Row, createdAt: Date): Promise<unknown>;
  /** Writes every column of `row` except the id, with a new `updatedAt`. */
  update(row: Row): Promise<unknown>;
  /** Records the catalogue change of an inserted row. */
  onInserted?(row: Row): void;
  /** Records the catalogue change of an updated row. `changed` lists the differing columns. */
  onUpdated?(row: Row, existing: Local, changed: K[]): void;
}

/**
 * Inserts `row` when the node has no copy (`existing` undefined), updates the copy when one of
 * the writer's fields differs, and counts the outcome in the run summary.
 */
export async function writeMirroredRow<
  Row extends { id: string },
  Local,
  K extends keyof Row & keyof Local & string,
>(
  context: MirrorContext,
  writer: MirrorWriter<Row, Local, K>,
  row: Row,
  existing: Local | undefined,
  createdAt: Date,
): Promise<void> {
  const counts = context.summary.counts[writer.entity];
  if (!existing) {
    await writer.insert(row, createdAt);
    counts.inserted += 1;
    writer.onInserted?.(row);
    return;
  }
  const changed = differingFields(existing, row, writer.fields);
  if (changed.length === 0) {
    counts.unchanged += 1;
    return;
  }
  await writer.update(row);
  counts.updated += 1;
  writer.onUpdated?.(row, existing, changed);
}

/** An entity whose name (a user's login, a Repo's or Unit's name) is unique on both sides. */
export interface NamedEntityMirror<
  Source extends { id: string; createdAt: Date },
  Row extends { id: string },
  Local extends { id: string; source: RowSource },
  K extends keyof Row & keyof Local & string,
> extends MirrorWriter<Row, Local, K> {
  /** The entity in skip details: `user`, `Repo` or `Unit`. */
  label: string;
  /** Every row of the node's table. */
  local: readonly Local[];
  map(source: Source): MappingResult<Row>;
  nameOf(row: Row | Local): string;
  /** Moves a row to a placeholder name, so that its old name is free for another row. */
  rename(id: string, placeholder: string): Promise<unknown>;
  /** Returns the skip detail when the row's parent is not mirrored, or undefined. */
  describeMissingParent?(row: Row): string | undefined;
  /** Returns the skip reason and detail when a node policy rejects the row, or undefined. */
  checkPolicy?(row: Row): Pick<ImportSkip, "reason" | "detail"> | undefined;
  /** Returns the skip detail when `holder` keeps the name that `row` needs. */
  describeNameConflict(row: Row, holder: LocalNamedRow): string;
}

/**
 * Mirrors the changed source rows of one named entity. Rows with an invalid value, the id of a
 * node-created row, an unmirrored parent, a policy rejection or a name that stays taken are
 * skipped and logged.
 */
export async function mirrorNamedRows<
  Source extends { id: string; createdAt: Date },
  Row extends { id: string },
  Local extends { id: string; source: RowSource },
  K extends keyof Row & keyof Local & string,
>(
  context: MirrorContext,
  mirror: NamedEntityMirror<Source, Row, Local, K>,
  sourceRows: readonly Source[],
): Promise<void> {
  const { entity, label } = mirror;
  const localById = new Map(mirror.local.map((row) => [row.id, row]));

  const candidates: { row: Row; createdAt: Date }[] = [];
  for (const source of sourceRows) {
    const mapped = mirror.map(source);
    if (!mapped.ok) {
      skipRow(context, {
        entity,
        sourceId: source.id,
        reason: "invalid-value",
        detail: `${mapped.problem}; fix the row in Pepeunit`,
      });
      continue;
    }
    const existing = localById.get(source.id);
    if (existing && existing.source !== "pepeunit") {
      skipRow(context, {
        entity,
        sourceId: source.id,
        reason: "id-conflict",
        detail: `node ${label} ${existing.id} (${mirror.nameOf(existing)}) has the same id; delete the node ${label} to mirror the Pepeunit one`,
      });
      continue;
    }
    const missingParent = mirror.describeMissingParent?.(mapped.value);
    if (missingParent !== undefined) {
      skipRow(context, {
        entity,
        sourceId: source.id,
        reason: "missing-parent",
        detail: missingParent,
      });
      continue;
    }
    const rejection = mirror.checkPolicy?.(mapped.value);
    if (rejection !== undefined) {
      skipRow(context, { entity, sourceId: source.id, ...rejection });
      continue;
    }
    candidates.push({ row: mapped.value, createdAt: source.createdAt });
  }

  const plan = planUniqueNames(
    mirror.local.map((row) => ({ id: row.id, name: mirror.nameOf(row), source: row.source })),
    candidates.map(({ row }) => ({ id: row.id, name: mirror.nameOf(row) })),
  );
  for (const id of plan.renamedIds) await mirror.rename(id, placeholderName(id));

  for (const { row, createdAt } of candidates) {
    const holder = plan.blocked.get(row.id);
    if (holder) {
      skipRow(context, {
        entity,
        sourceId: row.id,
        reason: "name-conflict",
        detail: mirror.describeNameConflict(row, holder),
      });
      continue;
    }
    await writeMirroredRow(context, mirror, row, localById.get(row.id), createdAt);
  }
}
