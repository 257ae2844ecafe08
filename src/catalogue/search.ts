/**
 * Repo search over the local catalogue (Public Repos only) and the federated catalogue in one
 * ranked, keyset-paginated query.
 *
 * Matching uses PostgreSQL full text with the `simple` configuration: the query is parsed with
 * `websearch_to_tsquery` (quotes, `or`, `-word`), then every lexeme is turned into a prefix match,
 * so `weath` finds `weather-station`. Exact lexeme matches add a second rank term and so sort
 * above prefix-only matches.
 */
import { createHash } from "node:crypto";
import { and, asc, eq, getTableColumns, gt, inArray, type SQL, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import {
  type FederatedRepo,
  type FederatedUnit,
  federatedRepos,
  federatedUnits,
  type GitPlatform,
  type RepoVersion,
} from "../db/schema/index.ts";
import type { CatalogueResult } from "./validation.ts";
import { fail, succeed } from "./validation.ts";

export const MAX_SEARCH_LIMIT = 100;

/** The origin filter value that selects this node's own Repos. */
export const LOCAL_ORIGIN = "local";

export interface RepoSearchParams {
  /** Free text in web search syntax; empty or absent lists Repos by recency. */
  query?: string | undefined;
  platform?: GitPlatform | undefined;
  compilable?: boolean | undefined;
  /** `local`, or the `host[:port]` of another instance. */
  origin?: string | undefined;
  /** Keeps Repos that have a Unit whose name contains this text (case-insensitive). */
  unit?: string | undefined;
  limit: number;
  /** The `next` value of the previous page. */
  cursor?: string | undefined;
}

export interface RepoSearchHit {
  /** ActivityPub IRI of the Repo actor. */
  iri: string;
  /** The Repo's Pepeunit UUID on its own instance, when known. */
  pepeunitId: string | null;
  origin: { host: string; isLocal: boolean };
  name: string;
  summary: string;
  repositoryUrl: string;
  platform: GitPlatform;
  defaultBranch: string | null;
  isCompilable: boolean;
  versions: RepoVersion[];
  updatedAt: string;
}

export interface RepoSearchPage {
  items: RepoSearchHit[];
  /** Cursor of the next page, or null on the last page. */
  next: string | null;
}

/** Returns the ActivityPub IRI of a local Repo actor. */
export function localRepoIri(origin: URL, repoId: string): string {
  return new URL(`/ap/actors/${repoId}`, origin).href;
}

interface SearchCursor {
  /** Fingerprint of the filters the cursor was issued for. */
  f: string;
  /** rank, sort time and IRI of the last row, as PostgreSQL printed them. */
  r: string;
  t: string;
  k: string;
}

interface SearchRow {
  iri: string;
  pepeunit_id: string | null;
  origin_host: string;
  is_local: boolean;
  name: string;
  summary: string;
  repository_url: string;
  platform: GitPlatform;
  default_branch: string | null;
  is_compilable: boolean;
  versions: RepoVersion[];
  sort_time_text: string;
  /** `sort_time` in ISO 8601 UTC with milliseconds. */
  updated_at: string;
  rank_text: string;
  [column: string]: unknown;
}

// Turns every quoted lexeme of a tsquery's text form into a prefix match: 'weath' -> 'weath':*.
// Inside a lexeme a single quote is written twice, hence the `''` alternative.
const LEXEME_PATTERN = "'((?:[^']|'')*)'";
const PREFIX_REPLACEMENT = "'\\1':*";

function fingerprint(params: RepoSearchParams): string {
  const filters = [
    normalizeQuery(params.query),
    params.platform ?? null,
    params.compilable ?? null,
    params.origin ?? null,
    params.unit ?? null,
  ];
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 16);
}

function normalizeQuery(query: string | undefined): string {
  return (query ?? "").trim();
}

function encodeCursor(cursor: SearchCursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

function decodeCursor(text: string): SearchCursor | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
    if (typeof value !== "object" || value === null) return null;
    const { f, r, t, k } = value as Record<string, unknown>;
    if (
      typeof f !== "string" ||
      typeof r !== "string" ||
      typeof t !== "string" ||
      typeof k !== "string"
    ) {
      return null;
    }
    if (!Number.isFinite(Number(r)) || Number.isNaN(Date.parse(t))) return null;
    return { f, r, t, k };
  } catch {
    return null;
  }
}

/** Escapes `%`, `_` and `\` so user text matches literally inside a LIKE pattern. */
function likeContains(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (character) => `\\${character}`)}%`;
}

/**
 * Searches local Public Repos and federated Repos. Fails only on a cursor that is malformed or
 * was issued for other filters.
 *
 * Rows are ordered by rank, then recency, then IRI, all descending. The cursor contains that
 * triple of the last row, so pages neither repeat nor skip rows while the data stays the same.
 */
export async function searchRepos(
  db: DatabaseLike,
  localOrigin: URL,
  params: RepoSearchParams,
): Promise<CatalogueResult<RepoSearchPage>> {
  const limit = Math.min(Math.max(Math.trunc(params.limit), 1), MAX_SEARCH_LIMIT);
  const filterFingerprint = fingerprint(params);

  let cursor: SearchCursor | null = null;
  if (params.cursor !== undefined) {
    cursor = decodeCursor(params.cursor);
    if (!cursor || cursor.f !== filterFingerprint) {
      return fail({
        kind: "invalid",
        field: "cursor",
        message:
          "expected the `next` value of a previous page with the same q, platform, compilable, origin and unit; start again without cursor",
      });
    }
  }

  const query = normalizeQuery(params.query);
  const exact = sql`websearch_to_tsquery('simple', ${query})`;
  const prefix = sql`regexp_replace((${exact})::text, ${LEXEME_PATTERN}, ${PREFIX_REPLACEMENT}, 'g')::tsquery`;
  const localHost = localOrigin.host;
  const origin = params.origin?.toLowerCase();
  const onlyLocal = origin === LOCAL_ORIGIN || origin === localHost;
  const onlyHost = origin !== undefined && !onlyLocal ? origin : undefined;

  const branch = (table: "local" | "federated"): SQL => {
    const document =
      table === "local" ? sql.raw("r.search_document") : sql.raw("f.search_document");
    const conditions: SQL[] = [];
    if (query !== "") conditions.push(sql`${document} @@ ${prefix}`);
    const rank =
      query === ""
        ? sql`0::real`
        : sql`(ts_rank(${document}, ${prefix}) + ts_rank(${document}, ${exact}))::real`;

    if (table === "local") {
      conditions.push(sql`r.visibility = 'Public'`);
      if (params.platform) conditions.push(sql`r.platform = ${params.platform}`);
      if (params.compilable !== undefined)
        conditions.push(sql`r.is_compilable = ${params.compilable}`);
      if (params.unit !== undefined) {
        // A semi-join: PostgreSQL scans the matching Units once and hashes them, instead of
        // running a subquery per Repo.
        conditions.push(sql`r.id in (
          select u.repo_id from units u
          where u.visibility = 'Public' and lower(u.name) like ${likeContains(params.unit)})`);
      }
      return sql`select * from (
          select ${localOrigin.origin} || '/ap/actors/' || r.id::text as iri,
            r.id::text as pepeunit_id, ${localHost}::text as origin_host, true as is_local,
            r.name, r.summary, r.repository_url, r.platform, r.default_branch, r.is_compilable,
            r.versions, r.updated_at as sort_time, ${rank} as rank
          from repos r where ${sql.join(conditions, sql` and `)}
        ) s`;
    }

    if (params.platform) conditions.push(sql`f.platform = ${params.platform}`);
    if (params.compilable !== undefined)
      conditions.push(sql`f.is_compilable = ${params.compilable}`);
    if (onlyHost !== undefined) conditions.push(sql`f.origin_host = ${onlyHost}`);
    if (params.unit !== undefined) {
      conditions.push(sql`f.iri in (
        select fu.repo_iri from federated_units fu where lower(fu.name) like ${likeContains(params.unit)})`);
    }
    const where = conditions.length > 0 ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;
    return sql`select * from (
        select f.iri, f.pepeunit_id::text as pepeunit_id, f.origin_host, false as is_local,
          f.name, f.summary, f.repository_url, f.platform, f.default_branch, f.is_compilable,
          f.versions, coalesce(f.remote_updated_at, f.published_at, f.received_at) as sort_time,
          ${rank} as rank
        from federated_repos f ${where}
      ) s`;
  };

  const after = cursor
    ? sql`where (s.rank, s.sort_time, s.iri) < (${cursor.r}::real, ${cursor.t}::timestamptz, ${cursor.k})`
    : sql``;
  const ordered = (source: SQL) =>
    sql`(${source} ${after} order by s.rank desc, s.sort_time desc, s.iri desc limit ${limit + 1})`;

  // Without `q` the rank is a constant, so each branch walks its recency index
  // (`repos_public_recency_idx`, `federated_repos_recency_idx`) instead of sorting the table.
  const parts: SQL[] = [];
  if (onlyHost === undefined) parts.push(ordered(branch("local")));
  if (!onlyLocal) parts.push(ordered(branch("federated")));

  // Each branch is cut to limit + 1 rows before the union, so the final sort never handles more
  // than 2 * (limit + 1) rows.
  const result = await db.execute<SearchRow>(sql`
    select u.*, u.sort_time::text as sort_time_text, u.rank::text as rank_text,
      to_char(u.sort_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as updated_at
    from (${sql.join(parts, sql` union all `)}) u
    order by u.rank desc, u.sort_time desc, u.iri desc
    limit ${limit + 1}`);

  const rows = result.rows.slice(0, limit);
  const last = rows.at(-1);
  const next =
    result.rows.length > limit && last
      ? encodeCursor({
          f: filterFingerprint,
          r: last.rank_text,
          t: last.sort_time_text,
          k: last.iri,
        })
      : null;
  return succeed({ items: rows.map(toHit), next });
}

function toHit(row: SearchRow): RepoSearchHit {
  return {
    iri: row.iri,
    pepeunitId: row.pepeunit_id,
    origin: { host: row.origin_host, isLocal: row.is_local },
    name: row.name,
    summary: row.summary,
    repositoryUrl: row.repository_url,
    platform: row.platform,
    defaultBranch: row.default_branch,
    isCompilable: row.is_compilable,
    versions: row.versions,
    updatedAt: row.updated_at,
  };
}

export interface FederatedCatalogueEntry {
  repo: Omit<FederatedRepo, "searchDocument">;
  units: FederatedUnit[];
}

/**
 * Lists federated Repos by IRI with their Units, `limit` at a time after the IRI `after`,
 * optionally of one origin host. IRI order is stable under updates, so paging never repeats rows.
 */
export async function listFederatedRepos(
  db: DatabaseLike,
  page: { limit: number; after?: string | undefined; originHost?: string | undefined },
): Promise<FederatedCatalogueEntry[]> {
  const { searchDocument: _searchDocument, ...columns } = getTableColumns(federatedRepos);
  const repoRows = await db
    .select(columns)
    .from(federatedRepos)
    .where(
      and(
        page.after === undefined ? undefined : gt(federatedRepos.iri, page.after),
        page.originHost === undefined
          ? undefined
          : eq(federatedRepos.originHost, page.originHost.toLowerCase()),
      ),
    )
    .orderBy(asc(federatedRepos.iri))
    .limit(Math.min(Math.max(Math.trunc(page.limit), 1), MAX_SEARCH_LIMIT));
  if (repoRows.length === 0) return [];

  const unitRows = await db
    .select()
    .from(federatedUnits)
    .where(
      inArray(
        federatedUnits.repoIri,
        repoRows.map((repo) => repo.iri),
      ),
    )
    .orderBy(asc(federatedUnits.name), asc(federatedUnits.iri));
  const unitsByRepo = new Map<string, FederatedUnit[]>(repoRows.map((repo) => [repo.iri, []]));
  for (const unit of unitRows) unitsByRepo.get(unit.repoIri)?.push(unit);
  return repoRows.map((repo) => ({ repo, units: unitsByRepo.get(repo.iri) ?? [] }));
}
