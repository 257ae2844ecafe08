import { eq } from "drizzle-orm";
import { repos, users } from "../db/schema/index.ts";
import { countDeniedRepository, GitHostRuleSet } from "../policy/git-hosts.ts";
import { InvalidRepositoryUrlError } from "../policy/repository-url.ts";
import { type MappingResult, type MirroredRepo, mapRepo } from "./mapping.ts";
import type { MirrorContext } from "./mirror-context.ts";
import { mirrorNamedRows } from "./mirror-rows.ts";
import type { SourceRepo } from "./source.ts";
import type { ImportSkip } from "./summary.ts";

const REPO_FIELDS = [
  "name",
  "repositoryUrl",
  "platform",
  "defaultBranch",
  "isCompilable",
  "visibility",
  "versions",
  "registryId",
  "ownerId",
] as const;

/** Returns the ids of the users this node mirrors from Pepeunit, the only valid owners. */
export async function readMirroredUserIds(context: MirrorContext): Promise<Set<string>> {
  const rows = await context.tx
    .select({ id: users.id })
    .from(users)
    .where(eq(users.source, "pepeunit"));
  return new Set(rows.map((row) => row.id));
}

/**
 * Adds the owner to a mapped Repo or Unit: its Pepeunit creator when this node mirrors that
 * user, otherwise none.
 */
export function withMirroredOwner<T>(
  mapped: MappingResult<T>,
  creatorId: string | null,
  ownerIds: Set<string>,
): MappingResult<T & { ownerId: string | null }> {
  if (!mapped.ok) return mapped;
  const ownerId = creatorId !== null && ownerIds.has(creatorId) ? creatorId : null;
  return { ok: true, value: { ...mapped.value, ownerId } };
}

/**
 * Returns the skip of a Repo whose repository host the git host rules reject, or undefined.
 * A URL whose host cannot be read is rejected too, because no rule can be checked for it.
 *
 * NOTE: only rows the run writes are checked. A Repo mirrored before a rule denied its host
 * keeps its copy until Pepeunit changes it; then the update is skipped, not the copy deleted.
 */
export function checkRepoGitHost(
  repo: MirroredRepo,
  rules: GitHostRuleSet,
): Pick<ImportSkip, "reason" | "detail"> | undefined {
  let detail: string;
  try {
    const decision = rules.checkRepositoryUrl(repo.repositoryUrl);
    if (decision.allowed) return undefined;
    detail = `the repository host ${decision.host} is not accepted (${decision.reason}); change the rule or the Repo's repository URL`;
  } catch (error) {
    if (!(error instanceof InvalidRepositoryUrlError)) throw error;
    detail = `${error.message}; fix the repository URL in Pepeunit`;
  }
  countDeniedRepository("import");
  return { reason: "git-host-denied", detail };
}

/**
 * Inserts or updates the node's copy of each changed Pepeunit Repo, joined with its registry row
 * for the repository URL, platform and release tags. The node-owned `summary` is left alone.
 */
export async function mirrorRepos(context: MirrorContext, sourceRepos: SourceRepo[]) {
  const { tx } = context;
  const local = await tx
    .select({
      id: repos.id,
      name: repos.name,
      source: repos.source,
      repositoryUrl: repos.repositoryUrl,
      platform: repos.platform,
      defaultBranch: repos.defaultBranch,
      isCompilable: repos.isCompilable,
      visibility: repos.visibility,
      versions: repos.versions,
      registryId: repos.registryId,
      ownerId: repos.ownerId,
    })
    .from(repos);
  const ownerIds = await readMirroredUserIds(context);
  const gitHostRules = await GitHostRuleSet.load(tx);

  await mirrorNamedRows(
    context,
    {
      entity: "repo",
      label: "Repo",
      local,
      fields: REPO_FIELDS,
      map: (row: SourceRepo) => withMirroredOwner(mapRepo(row), row.creatorId, ownerIds),
      nameOf: (row) => row.name,
      checkPolicy: (repo) => checkRepoGitHost(repo, gitHostRules),
      describeNameConflict: (repo, holder) =>
        `name ${JSON.stringify(repo.name)} belongs to ${holder.source} Repo ${holder.id}; rename or delete one of the two Repos`,
      rename: (id, name) => tx.update(repos).set({ name }).where(eq(repos.id, id)),
      insert: (repo, createdAt) =>
        tx.insert(repos).values({ ...repo, source: "pepeunit", createdAt }),
      update: ({ id, ...fields }) =>
        tx
          .update(repos)
          .set({ ...fields, updatedAt: new Date() })
          .where(eq(repos.id, id)),
      onInserted: (repo) => context.changedRepoIds.add(repo.id),
      onUpdated: (repo, _existing, changed) => {
        context.changedRepoIds.add(repo.id);
        context.logger.debug("Updated Repo {repoId}: {fields}", {
          repoId: repo.id,
          fields: changed,
        });
      },
    },
    sourceRepos,
  );
}
