/**
 * Local Repos: create, update and delete with Pepeunit's rules. Every write runs in one
 * transaction and records a catalogue change for each Repo and Unit it touches, so the publisher
 * can announce it to followers.
 */
import { asc, eq, getTableColumns, gt, inArray, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  GIT_PLATFORMS,
  type GitPlatform,
  type Repo,
  type RepoVersion,
  repos,
  unitNodes,
  units,
  VISIBILITY_LEVELS,
  type Visibility,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import * as gitHosts from "../policy/git-hosts.ts";
import { recordCatalogueChange } from "./changes.ts";
import {
  type CatalogueFailure,
  type CatalogueResult,
  CatalogueRollback,
  checkCommit,
  checkName,
  checkRepositoryUrl,
  fail,
  firstFailure,
  isUniqueViolation,
  levelsMoreOpenThan,
  SUMMARY_MAX_LENGTH,
  succeed,
  visibilityRank,
} from "./validation.ts";

const logger = getNodeLogger("catalogue", "repos");

/** A Repo row without its generated search document. */
export type RepoRecord = Omit<Repo, "searchDocument">;

const { searchDocument: _searchDocument, ...repoColumns } = getTableColumns(repos);

export interface RepoInput {
  name: string;
  summary?: string;
  repositoryUrl: string;
  platform: GitPlatform;
  defaultBranch?: string | null;
  isCompilable?: boolean;
  visibility?: Visibility;
  versions?: RepoVersion[];
}

export type RepoChanges = Partial<RepoInput>;

export interface WriteOptions {
  /**
   * Allows changing rows mirrored from Pepeunit (`source = 'pepeunit'`). The REST API leaves it
   * off, because the importer would overwrite such a change on its next run.
   */
  allowMirrored?: boolean;
}

export interface RepoUpdate {
  repo: RepoRecord;
  /** Ids of the Units whose visibility the update tightened. */
  tightenedUnitIds: string[];
}

export interface RepoDeletion {
  id: string;
  /** Ids of the Units deleted with the Repo. */
  deletedUnitIds: string[];
}

/** Checks the fields present in `input`; absent fields are not checked. */
export function checkRepoFields(input: RepoChanges): CatalogueFailure | null {
  const versionFailures = (input.versions ?? []).map((version, index): CatalogueFailure | null => {
    if (version.commit !== null) return checkCommit(`versions[${index}].commit`, version.commit);
    return version.tag === null || version.tag === ""
      ? {
          kind: "invalid",
          field: `versions[${index}]`,
          message: "expected a tag, a commit or both",
        }
      : null;
  });
  return firstFailure(
    input.name === undefined ? null : checkName("name", input.name),
    input.repositoryUrl === undefined
      ? null
      : checkRepositoryUrl("repositoryUrl", input.repositoryUrl),
    input.platform === undefined || GIT_PLATFORMS.includes(input.platform)
      ? null
      : {
          kind: "invalid",
          field: "platform",
          message: `expected one of ${GIT_PLATFORMS.join(", ")}`,
        },
    input.visibility === undefined || VISIBILITY_LEVELS.includes(input.visibility)
      ? null
      : {
          kind: "invalid",
          field: "visibility",
          message: `expected one of ${VISIBILITY_LEVELS.join(", ")}`,
        },
    input.summary !== undefined && input.summary.length > SUMMARY_MAX_LENGTH
      ? {
          kind: "invalid",
          field: "summary",
          message: `expected at most ${SUMMARY_MAX_LENGTH} characters`,
        }
      : null,
    input.defaultBranch != null && !/^[^\s~^:?*[\\]{1,255}$/.test(input.defaultBranch)
      ? {
          kind: "invalid",
          field: "defaultBranch",
          message: "expected a git branch name of 1 to 255 characters without spaces or ~^:?*[\\",
        }
      : null,
    ...versionFailures,
  );
}

/**
 * Checks the host of a new repository URL against the git host rules. The URL has passed
 * {@link checkRepoFields}, so it parses.
 */
async function checkRepositoryHost(
  db: DatabaseLike,
  repositoryUrl: string | undefined,
): Promise<CatalogueFailure | null> {
  if (repositoryUrl === undefined) return null;
  const decision = await gitHosts.checkRepositoryUrl(db, repositoryUrl);
  if (decision.allowed) return null;
  gitHosts.countDeniedRepository("api");
  logger.info("Rejected a Repo with repository host {host}: {reason}", {
    host: decision.host,
    reason: decision.reason,
  });
  return {
    kind: "git_host_denied",
    field: "repositoryUrl",
    host: decision.host,
    reason: decision.reason,
    ruleId: decision.rule?.id ?? null,
  };
}

function nameTaken(name: string): CatalogueFailure {
  return { kind: "name_taken", entity: "repo", name };
}

/** Returns the Repo with `id`, or null. */
export async function getRepo(db: DatabaseLike, id: string): Promise<RepoRecord | null> {
  const [row] = await db.select(repoColumns).from(repos).where(eq(repos.id, id));
  return row ?? null;
}

/** Lists local Repos of every visibility by name, `limit` at a time, after the name `after`. */
export async function listRepos(
  db: DatabaseLike,
  page: { limit: number; after?: string | undefined },
): Promise<RepoRecord[]> {
  return await db
    .select(repoColumns)
    .from(repos)
    .where(page.after === undefined ? undefined : gt(repos.name, page.after))
    .orderBy(asc(repos.name))
    .limit(page.limit);
}

/**
 * Creates a local Repo and records the change. Fails on invalid fields, a repository host that
 * the git host rules deny, or a taken name.
 */
export async function createRepo(
  db: DatabaseLike,
  input: RepoInput,
): Promise<CatalogueResult<RepoRecord>> {
  const failure = checkRepoFields(input) ?? (await checkRepositoryHost(db, input.repositoryUrl));
  if (failure) return fail(failure);

  try {
    const repo = await db.transaction(async (tx) => {
      const [created] = await tx
        .insert(repos)
        .values({
          name: input.name,
          summary: input.summary ?? "",
          repositoryUrl: input.repositoryUrl,
          platform: input.platform,
          defaultBranch: input.defaultBranch ?? null,
          isCompilable: input.isCompilable ?? false,
          visibility: input.visibility ?? "Public",
          versions: input.versions ?? [],
          source: "node",
        })
        .returning(repoColumns);
      if (!created) throw new Error("INSERT ... RETURNING returned no Repo row");
      await recordCatalogueChange(tx, "repo", created.id);
      return created;
    });
    logger.info("Created Repo {repoId} ({name})", { repoId: repo.id, name: repo.name });
    return succeed(repo);
  } catch (error) {
    if (isUniqueViolation(error, "repos_name_unique")) return fail(nameTaken(input.name));
    throw error;
  }
}

/**
 * Updates a local Repo and records a change for it and for each tightened Unit. A stricter
 * visibility tightens every Unit and UnitNode of the Repo that is more open, as Pepeunit does.
 * A more open visibility leaves them as they are. A new repository URL is checked against the
 * git host rules; a Repo whose unchanged URL a later rule denies can still be updated.
 */
export async function updateRepo(
  db: DatabaseLike,
  id: string,
  changes: RepoChanges,
  options: WriteOptions = {},
): Promise<CatalogueResult<RepoUpdate>> {
  const failure =
    checkRepoFields(changes) ?? (await checkRepositoryHost(db, changes.repositoryUrl));
  if (failure) return fail(failure);

  try {
    const result = await db.transaction(async (tx) => {
      const [current] = await tx
        .select({ id: repos.id, source: repos.source, visibility: repos.visibility })
        .from(repos)
        .where(eq(repos.id, id))
        .for("update");
      if (!current) throw new CatalogueRollback({ kind: "not_found", entity: "repo", id });
      if (current.source === "pepeunit" && !options.allowMirrored) {
        throw new CatalogueRollback({ kind: "mirrored", entity: "repo", id });
      }

      const [repo] = await tx
        .update(repos)
        .set({
          name: changes.name,
          summary: changes.summary,
          repositoryUrl: changes.repositoryUrl,
          platform: changes.platform,
          defaultBranch: changes.defaultBranch,
          isCompilable: changes.isCompilable,
          visibility: changes.visibility,
          versions: changes.versions,
          updatedAt: sql`now()`,
        })
        .where(eq(repos.id, id))
        .returning(repoColumns);
      if (!repo) throw new Error(`UPDATE ... RETURNING returned no row for Repo ${id}`);

      const tightened =
        visibilityRank(repo.visibility) > visibilityRank(current.visibility)
          ? await tightenUnitsOfRepo(tx, id, repo.visibility)
          : [];

      await recordCatalogueChange(tx, "repo", id);
      for (const unitId of tightened) await recordCatalogueChange(tx, "unit", unitId);
      return { repo, tightenedUnitIds: tightened };
    });
    logger.info("Updated Repo {repoId}; tightened {count} Units", {
      repoId: id,
      count: result.tightenedUnitIds.length,
    });
    return succeed(result);
  } catch (error) {
    if (error instanceof CatalogueRollback) return fail(error.failure);
    if (changes.name !== undefined && isUniqueViolation(error, "repos_name_unique")) {
      return fail(nameTaken(changes.name));
    }
    throw error;
  }
}

/** Sets every Unit and UnitNode of the Repo that is more open than `level` to `level`. */
async function tightenUnitsOfRepo(
  db: DatabaseLike,
  repoId: string,
  level: Visibility,
): Promise<string[]> {
  const moreOpen = levelsMoreOpenThan(level);
  const changed = await db
    .update(units)
    .set({ visibility: level, updatedAt: sql`now()` })
    .where(sql`${units.repoId} = ${repoId} and ${inArray(units.visibility, moreOpen)}`)
    .returning({ id: units.id });

  // Nodes are checked across all Units of the Repo, not only the tightened ones, so rows that
  // broke the rule before (for example, written by an older importer) are repaired as well.
  const unitIdsOfRepo = db.select({ id: units.id }).from(units).where(eq(units.repoId, repoId));
  await db
    .update(unitNodes)
    .set({ visibility: level, updatedAt: sql`now()` })
    .where(
      sql`${inArray(unitNodes.unitId, unitIdsOfRepo)} and ${inArray(unitNodes.visibility, moreOpen)}`,
    );

  return changed.map((row) => row.id);
}

/** Deletes a local Repo with its Units and their nodes, and records a change for each. */
export async function deleteRepo(
  db: DatabaseLike,
  id: string,
  options: WriteOptions = {},
): Promise<CatalogueResult<RepoDeletion>> {
  try {
    const deletion = await db.transaction(async (tx) => {
      const [current] = await tx
        .select({ id: repos.id, source: repos.source })
        .from(repos)
        .where(eq(repos.id, id))
        .for("update");
      if (!current) throw new CatalogueRollback({ kind: "not_found", entity: "repo", id });
      if (current.source === "pepeunit" && !options.allowMirrored) {
        throw new CatalogueRollback({ kind: "mirrored", entity: "repo", id });
      }

      // The Repo row lock keeps new Units out (they lock the Repo FOR SHARE), so this list is
      // complete when the cascade runs.
      const unitRows = await tx.select({ id: units.id }).from(units).where(eq(units.repoId, id));
      await tx.delete(repos).where(eq(repos.id, id));

      await recordCatalogueChange(tx, "repo", id);
      for (const unit of unitRows) await recordCatalogueChange(tx, "unit", unit.id);
      return { id, deletedUnitIds: unitRows.map((unit) => unit.id) };
    });
    logger.info("Deleted Repo {repoId} with {count} Units", {
      repoId: id,
      count: deletion.deletedUnitIds.length,
    });
    return succeed(deletion);
  } catch (error) {
    if (error instanceof CatalogueRollback) return fail(error.failure);
    throw error;
  }
}
