/**
 * Pepeunit's rules for catalogue entities, and the expected failures of the catalogue services.
 * The REST API reuses the patterns and messages here, so a request that passes the API schema
 * passes the service checks too.
 */
import { VISIBILITY_LEVELS, type Visibility } from "../db/schema/index.ts";

/** Repo and Unit names: 4 to 20 characters, unique per instance (Pepeunit's rule). */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{4,20}$/;
export const NAME_RULE = "expected 4 to 20 characters from A-Z, a-z, 0-9, '_', '.' and '-'";

/** Characters Pepeunit allows in the topic names of a Repo's schema. */
export const TOPIC_NAME_PATTERN = /^[A-Za-z0-9/_-]{1,100}$/;
export const TOPIC_NAME_RULE =
  "expected 1 to 100 characters from A-Z, a-z, 0-9, '/', '_' and '-', such as current_temp/pepeunit";

export const REPOSITORY_URL_RULE =
  "expected an http:// or https:// URL ending in .git, such as https://github.com/owner/firmware.git";

/** A git commit id, abbreviated (7+ hex digits) or full (40). */
export const COMMIT_PATTERN = /^[0-9a-f]{7,40}$/;
export const COMMIT_RULE = "expected 7 to 40 lower-case hexadecimal digits of a git commit";

export const SUMMARY_MAX_LENGTH = 1000;

/** An expected failure of a catalogue write; the REST API maps each kind to one status. */
export type CatalogueFailure =
  | { kind: "invalid"; field: string; message: string }
  | { kind: "not_found"; entity: "repo" | "unit"; id: string }
  | { kind: "name_taken"; entity: "repo" | "unit"; name: string }
  | { kind: "visibility_too_open"; field: string; message: string }
  | { kind: "mirrored"; entity: "repo" | "unit"; id: string }
  | { kind: "git_host_denied"; field: string; host: string; reason: string; ruleId: string | null };

export type CatalogueResult<T> = { ok: true; value: T } | { ok: false; failure: CatalogueFailure };

export function succeed<T>(value: T): CatalogueResult<T> {
  return { ok: true, value };
}

export function fail<T = never>(failure: CatalogueFailure): CatalogueResult<T> {
  return { ok: false, failure };
}

/**
 * Thrown inside a transaction to roll it back with an expected failure; the service catches it
 * after the rollback and returns the failure.
 */
export class CatalogueRollback extends Error {
  readonly failure: CatalogueFailure;

  constructor(failure: CatalogueFailure) {
    super(`Catalogue write rolled back: ${failure.kind}`);
    this.name = "CatalogueRollback";
    this.failure = failure;
  }
}

/** Openness of a visibility level: Public 0, Internal 1, Private 2. */
export function visibilityRank(level: Visibility): number {
  return VISIBILITY_LEVELS.indexOf(level);
}

/** True when `child` is as strict as `parent` or stricter. */
export function isWithin(child: Visibility, parent: Visibility): boolean {
  return visibilityRank(child) >= visibilityRank(parent);
}

/** Returns the levels more open than `level`: the ones a tightening to `level` rewrites. */
export function levelsMoreOpenThan(level: Visibility): Visibility[] {
  return VISIBILITY_LEVELS.slice(0, visibilityRank(level));
}

export function checkName(field: string, name: string): CatalogueFailure | null {
  return NAME_PATTERN.test(name) ? null : { kind: "invalid", field, message: NAME_RULE };
}

export function checkRepositoryUrl(field: string, value: string): CatalogueFailure | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { kind: "invalid", field, message: REPOSITORY_URL_RULE };
  }
  const validScheme = url.protocol === "https:" || url.protocol === "http:";
  if (!validScheme || !url.pathname.endsWith(".git") || url.pathname === "/.git") {
    return { kind: "invalid", field, message: REPOSITORY_URL_RULE };
  }
  return null;
}

export function checkTopicName(field: string, topicName: string): CatalogueFailure | null {
  return TOPIC_NAME_PATTERN.test(topicName)
    ? null
    : { kind: "invalid", field, message: TOPIC_NAME_RULE };
}

export function checkCommit(field: string, commit: string): CatalogueFailure | null {
  return COMMIT_PATTERN.test(commit) ? null : { kind: "invalid", field, message: COMMIT_RULE };
}

/** Returns the first failure of a list of checks, or null when all pass. */
export function firstFailure(
  ...failures: Array<CatalogueFailure | null | undefined>
): CatalogueFailure | null {
  for (const failure of failures) {
    if (failure) return failure;
  }
  return null;
}

/** Finds the PostgreSQL error behind a failed query; drizzle wraps driver errors in `cause`. */
function findDatabaseError(error: unknown): { code?: string; constraint?: string } | null {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    const candidate = current as Error & { code?: unknown; constraint?: unknown };
    if (typeof candidate.code === "string") {
      return {
        code: candidate.code,
        constraint: typeof candidate.constraint === "string" ? candidate.constraint : undefined,
      };
    }
    current = candidate.cause;
  }
  return null;
}

/** True when `error` is a unique violation (SQLSTATE 23505) of the named constraint. */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  const found = findDatabaseError(error);
  return found?.code === "23505" && found.constraint === constraint;
}
