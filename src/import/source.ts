/**
 * Reads the Pepeunit backend database (schema of pepeunit_backend 1.2, Alembic head
 * 99db704045c6). Every query names its columns: secrets (`hashed_password`, `cipher_*`),
 * Telegram chat ids, Unit state and env, UnitNode values and DataPipe configs are never selected,
 * so an operator can grant the import role SELECT on the listed columns only.
 *
 * Pepeunit stores naive UTC timestamps; `at time zone 'UTC'` turns them into `timestamptz` so
 * `pg` does not read them in the node's local time zone.
 */
import type pg from "pg";

export interface SourceUser {
  id: string;
  login: string;
  role: string;
  status: string;
  createdAt: Date;
}

export interface SourceRepo {
  id: string;
  name: string;
  visibility: string;
  defaultBranch: string | null;
  defaultCommit: string | null;
  isCompilable: boolean;
  creatorId: string | null;
  registryId: string;
  platform: string;
  repositoryUrl: string;
  /** JSON text `{"<tag>": [["<asset name>", "<url>"], ...]}` written by the registry sync. */
  releasesData: string | null;
  createdAt: Date;
}

export interface SourceUnit {
  id: string;
  name: string;
  visibility: string;
  /** Nullable in Pepeunit's schema, although the backend always sets it. */
  repoId: string | null;
  creatorId: string | null;
  createdAt: Date;
}

export interface SourceUnitNode {
  id: string;
  unitId: string | null;
  type: string;
  topicName: string;
  visibility: string;
  createdAt: Date;
}

/** Newest change time per source table, used as the next import cursor. */
export interface SourceHighWaterMarks {
  repos: Date | null;
  repositoryRegistry: Date | null;
  units: Date | null;
  unitsNodes: Date | null;
}

/**
 * Lower bounds for the incremental reads: rows changed after them are read, plus the rows named
 * in `ids` (source rows the node does not have yet). A `null` bound reads the whole table.
 */
export interface ChangedRowsQuery {
  since: Date | null;
  ids: string[];
}

export interface ChangedReposQuery extends ChangedRowsQuery {
  /** Registry rows change on sync (releases) without touching the Repo row. */
  registrySince: Date | null;
}

/**
 * Opens a consistent read-only snapshot on the source, runs `read` in it and ends it. REPEATABLE
 * READ makes every query of the run see the same committed state, so a Unit is never read
 * without the Repo it points to.
 */
export async function withSourceSnapshot<T>(
  source: pg.Pool,
  read: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await source.connect();
  try {
    await client.query("begin isolation level repeatable read read only");
    try {
      const result = await read(client);
      await client.query("commit");
      return result;
    } catch (error) {
      await client.query("rollback").catch(() => undefined);
      throw error;
    }
  } finally {
    client.release();
  }
}

/**
 * Reads every user. Pepeunit's `users` has no update timestamp, and role and status change in
 * place (blocking, Telegram verification), so this table is compared in full on every run.
 */
export async function readSourceUsers(client: pg.PoolClient): Promise<SourceUser[]> {
  const result = await client.query<SourceUser>(
    `select uuid as "id", login, role, status,
            create_datetime at time zone 'UTC' as "createdAt"
       from users
      order by uuid`,
  );
  return result.rows;
}

/** Reads the ids of every row of `table`: the full scan that detects deletions. */
export async function readSourceIds(
  client: pg.PoolClient,
  table: "repos" | "units" | "units_nodes",
): Promise<Set<string>> {
  const result = await client.query<{ id: string }>(`select uuid as "id" from ${table}`);
  return new Set(result.rows.map((row) => row.id));
}

export async function readChangedRepos(
  client: pg.PoolClient,
  query: ChangedReposQuery,
): Promise<SourceRepo[]> {
  const result = await client.query<SourceRepo>(
    `select r.uuid as "id", r.name, r.visibility_level as "visibility",
            r.default_branch as "defaultBranch", r.default_commit as "defaultCommit",
            r.is_compilable_repo as "isCompilable", r.creator_uuid as "creatorId",
            r.repository_registry_uuid as "registryId", rr.platform,
            rr.repository_url as "repositoryUrl", rr.releases_data as "releasesData",
            r.create_datetime at time zone 'UTC' as "createdAt"
       from repos r
       join repository_registry rr on rr.uuid = r.repository_registry_uuid
      where $1::timestamptz is null
         or $2::timestamptz is null
         or r.last_update_datetime > ($1::timestamptz at time zone 'UTC')
         or greatest(rr.last_update_datetime, rr.sync_last_datetime)
              > ($2::timestamptz at time zone 'UTC')
         or r.uuid = any($3::uuid[])
      order by r.uuid`,
    [query.since, query.registrySince, query.ids],
  );
  return result.rows;
}

export async function readChangedUnits(
  client: pg.PoolClient,
  query: ChangedRowsQuery,
): Promise<SourceUnit[]> {
  const result = await client.query<SourceUnit>(
    `select uuid as "id", name, visibility_level as "visibility", repo_uuid as "repoId",
            creator_uuid as "creatorId", create_datetime at time zone 'UTC' as "createdAt"
       from units
      where $1::timestamptz is null
         or last_update_datetime > ($1::timestamptz at time zone 'UTC')
         or uuid = any($2::uuid[])
      order by uuid`,
    [query.since, query.ids],
  );
  return result.rows;
}

export async function readChangedUnitNodes(
  client: pg.PoolClient,
  query: ChangedRowsQuery,
): Promise<SourceUnitNode[]> {
  const result = await client.query<SourceUnitNode>(
    `select uuid as "id", unit_uuid as "unitId", type, topic_name as "topicName",
            visibility_level as "visibility", create_datetime at time zone 'UTC' as "createdAt"
       from units_nodes
      where $1::timestamptz is null
         or last_update_datetime > ($1::timestamptz at time zone 'UTC')
         or uuid = any($2::uuid[])
      order by uuid`,
    [query.since, query.ids],
  );
  return result.rows;
}

export async function readHighWaterMarks(client: pg.PoolClient): Promise<SourceHighWaterMarks> {
  const result = await client.query<SourceHighWaterMarks>(
    `select (select max(last_update_datetime) from repos) at time zone 'UTC' as "repos",
            (select max(greatest(last_update_datetime, sync_last_datetime))
               from repository_registry) at time zone 'UTC' as "repositoryRegistry",
            (select max(last_update_datetime) from units) at time zone 'UTC' as "units",
            (select max(last_update_datetime) from units_nodes) at time zone 'UTC'
              as "unitsNodes"`,
  );
  const row = result.rows[0];
  if (!row) throw new Error("Reading the Pepeunit high-water marks returned no row");
  return row;
}
