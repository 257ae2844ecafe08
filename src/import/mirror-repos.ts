import { eq } from "drizzle-orm";
import { repos, users } from "../db/schema/index.ts";
import { type MirroredRepo, mapRepo } from "./mapping.ts";
import { differingFields, type MirrorContext, skipRow } from "./mirror-context.ts";
import { placeholderName, planUniqueNames } from "./names.ts";
import type { SourceRepo } from "./source.ts";

type RepoWrite = MirroredRepo & { ownerId: string | null };

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
 * Inserts or updates the node's copy of each changed Pepeunit Repo, joined with its registry row
 * for the repository URL, platform and release tags. The node-owned `summary` is left alone.
 */
export async function mirrorRepos(context: MirrorContext, sourceRepos: SourceRepo[]) {
  const { tx, summary } = context;
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
  const localById = new Map(local.map((row) => [row.id, row]));
  const ownerIds = await readMirroredUserIds(context);

  const candidates: { repo: RepoWrite; createdAt: Date }[] = [];
  for (const row of sourceRepos) {
    const mapped = mapRepo(row);
    if (!mapped.ok) {
      skipRow(context, {
        entity: "repo",
        sourceId: row.id,
        reason: "invalid-value",
        detail: `${mapped.problem}; fix the row in Pepeunit`,
      });
      continue;
    }
    const existing = localById.get(row.id);
    if (existing && existing.source !== "pepeunit") {
      skipRow(context, {
        entity: "repo",
        sourceId: row.id,
        reason: "id-conflict",
        detail: `node Repo ${existing.id} (${existing.name}) has the same id; delete the node Repo to mirror the Pepeunit one`,
      });
      continue;
    }
    const ownerId = row.creatorId !== null && ownerIds.has(row.creatorId) ? row.creatorId : null;
    candidates.push({ repo: { ...mapped.value, ownerId }, createdAt: row.createdAt });
  }

  const plan = planUniqueNames(
    local.map((row) => ({ id: row.id, name: row.name, source: row.source })),
    candidates.map(({ repo }) => ({ id: repo.id, name: repo.name })),
  );
  for (const id of plan.renamedIds) {
    await tx
      .update(repos)
      .set({ name: placeholderName(id) })
      .where(eq(repos.id, id));
  }

  for (const { repo, createdAt } of candidates) {
    const holder = plan.blocked.get(repo.id);
    if (holder) {
      skipRow(context, {
        entity: "repo",
        sourceId: repo.id,
        reason: "name-conflict",
        detail: `name ${JSON.stringify(repo.name)} belongs to ${holder.source} Repo ${holder.id}; rename or delete one of the two Repos`,
      });
      continue;
    }

    const existing = localById.get(repo.id);
    if (!existing) {
      await tx.insert(repos).values({ ...repo, source: "pepeunit", createdAt });
      summary.counts.repo.inserted += 1;
      context.changedRepoIds.add(repo.id);
      continue;
    }
    const changed = differingFields(existing, repo, REPO_FIELDS);
    if (changed.length === 0) {
      summary.counts.repo.unchanged += 1;
      continue;
    }
    const { id, ...fields } = repo;
    await tx
      .update(repos)
      .set({ ...fields, updatedAt: new Date() })
      .where(eq(repos.id, id));
    summary.counts.repo.updated += 1;
    context.changedRepoIds.add(id);
    context.logger.debug("Updated Repo {repoId}: {fields}", { repoId: id, fields: changed });
  }
}
