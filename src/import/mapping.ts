/**
 * Maps Pepeunit rows to the node's columns. Pepeunit stores its enum values in VARCHAR columns
 * without constraints, so every value is checked against the node's lists here. A row with an
 * unknown value is skipped instead of failing the whole run on a CHECK constraint.
 */
import {
  GIT_PLATFORMS,
  type GitPlatform,
  type RepoVersion,
  UNIT_NODE_TYPES,
  type UnitNodeType,
  USER_ROLES,
  USER_STATUSES,
  VISIBILITY_LEVELS,
  type Visibility,
} from "../db/schema/index.ts";
import type { SourceRepo, SourceUnit, SourceUnitNode, SourceUser } from "./source.ts";

/** A mapped row, or the reason it cannot be mapped. */
export type MappingResult<T> = { ok: true; value: T } | { ok: false; problem: string };

export interface MirroredUser {
  id: string;
  login: string;
  role: (typeof USER_ROLES)[number];
  status: (typeof USER_STATUSES)[number];
}

/** Repo columns the importer owns; `summary` belongs to the node and is never overwritten. */
export interface MirroredRepo {
  id: string;
  name: string;
  repositoryUrl: string;
  platform: GitPlatform;
  defaultBranch: string | null;
  isCompilable: boolean;
  visibility: Visibility;
  versions: RepoVersion[];
  registryId: string;
}

export interface MirroredUnit {
  id: string;
  name: string;
  visibility: Visibility;
  repoId: string;
}

export interface MirroredUnitNode {
  id: string;
  unitId: string;
  type: UnitNodeType;
  topicName: string;
  visibility: Visibility;
}

function isOneOf<T extends string>(values: readonly T[], value: string): value is T {
  return (values as readonly string[]).includes(value);
}

function invalid(column: string, value: unknown, allowed: readonly string[]) {
  return {
    ok: false as const,
    problem: `${column} is ${JSON.stringify(value)}, expected one of ${allowed.join(", ")}`,
  };
}

export function mapUser(row: SourceUser): MappingResult<MirroredUser> {
  if (!isOneOf(USER_ROLES, row.role)) return invalid("role", row.role, USER_ROLES);
  if (!isOneOf(USER_STATUSES, row.status)) return invalid("status", row.status, USER_STATUSES);
  return { ok: true, value: { id: row.id, login: row.login, role: row.role, status: row.status } };
}

export function mapRepo(row: SourceRepo): MappingResult<MirroredRepo> {
  if (!isOneOf(VISIBILITY_LEVELS, row.visibility)) {
    return invalid("visibility_level", row.visibility, VISIBILITY_LEVELS);
  }
  if (!isOneOf(GIT_PLATFORMS, row.platform)) {
    return invalid("repository_registry.platform", row.platform, GIT_PLATFORMS);
  }
  return {
    ok: true,
    value: {
      id: row.id,
      name: row.name,
      repositoryUrl: row.repositoryUrl,
      platform: row.platform,
      defaultBranch: row.defaultBranch,
      isCompilable: row.isCompilable,
      visibility: row.visibility,
      versions: repoVersions(row.releasesData, row.defaultCommit),
      registryId: row.registryId,
    },
  };
}

export function mapUnit(row: SourceUnit): MappingResult<MirroredUnit> {
  if (!isOneOf(VISIBILITY_LEVELS, row.visibility)) {
    return invalid("visibility_level", row.visibility, VISIBILITY_LEVELS);
  }
  if (row.repoId === null) return { ok: false, problem: "repo_uuid is null" };
  return {
    ok: true,
    value: { id: row.id, name: row.name, visibility: row.visibility, repoId: row.repoId },
  };
}

export function mapUnitNode(row: SourceUnitNode): MappingResult<MirroredUnitNode> {
  if (!isOneOf(UNIT_NODE_TYPES, row.type)) return invalid("type", row.type, UNIT_NODE_TYPES);
  if (!isOneOf(VISIBILITY_LEVELS, row.visibility)) {
    return invalid("visibility_level", row.visibility, VISIBILITY_LEVELS);
  }
  if (row.unitId === null) return { ok: false, problem: "unit_uuid is null" };
  return {
    ok: true,
    value: {
      id: row.id,
      unitId: row.unitId,
      type: row.type,
      topicName: row.topicName,
      visibility: row.visibility,
    },
  };
}

/**
 * Returns the versions Pepeunit records without cloning the repository: one per release tag in
 * `releases_data` (commit unknown), then the pinned `default_commit` when the Repo has one.
 * Tags keep the order of the JSON object, which is the order the Git platform listed them, except
 * that JavaScript puts integer-like keys such as `2024` first. Malformed `releases_data` yields no
 * tags.
 */
export function repoVersions(releasesData: string | null, defaultCommit: string | null) {
  const versions: RepoVersion[] = releaseTags(releasesData).map((tag) => ({ tag, commit: null }));
  if (defaultCommit) versions.push({ tag: null, commit: defaultCommit });
  return versions;
}

/**
 * Returns the tags of `releases_data`. Pepeunit writes it with `json.dumps` from a dict of tag to
 * a list of `(asset name, asset URL)` pairs (`get_releases` in
 * pepeunit_backend app/repositories/git_platform_repository.py), or NULL when there are none.
 */
export function releaseTags(releasesData: string | null): string[] {
  if (releasesData === null || releasesData.trim() === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(releasesData);
  } catch {
    return [];
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return [];
  return Object.entries(parsed)
    .filter(([tag, assets]) => tag !== "" && Array.isArray(assets))
    .map(([tag]) => tag);
}
