import { eq } from "drizzle-orm";
import { repos, users } from "../db/schema/index.ts";
import { type MappingResult, mapRepo } from "./mapping.ts";
import type { MirrorContext } from "./mirror-context.ts";
import { mirrorNamedRows } from "./mirror-rows.ts";
import type { SourceRepo } from "./source.ts";

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

  await mirrorNamedRows(
    context,
    {
      entity: "repo",
      label: "Repo",
      local,
      fields: REPO_FIELDS,
      map: (row: SourceRepo) => withMirroredOwner(mapRepo(row), row.creatorId, ownerIds),
      nameOf: (row) => row.name,
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
