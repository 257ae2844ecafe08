import { type SQL, sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  customType,
  index,
  jsonb,
  pgTable,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, ROW_SOURCES, sqlList, updatedAt, VISIBILITY_LEVELS } from "./common.ts";
import { users } from "./users.ts";

export const GIT_PLATFORMS = ["Gitlab", "Github"] as const;
export type GitPlatform = (typeof GIT_PLATFORMS)[number];

export const UNIT_NODE_TYPES = ["Input", "Output"] as const;
export type UnitNodeType = (typeof UNIT_NODE_TYPES)[number];

/** A known firmware version of a Repo: a git tag, or a commit on the default branch. */
export interface RepoVersion {
  tag: string | null;
  /** `null` when only the tag is known: Pepeunit's `releases_data` lists tags without commits. */
  commit: string | null;
}

export const tsvector = customType<{ data: string }>({
  dataType() {
    return "tsvector";
  },
});

/**
 * Weighted full-text document of a Repo: name (A), summary (B), repository URL (C). The `simple`
 * configuration keeps Repo names, which are identifiers rather than words, unstemmed.
 */
export function repoSearchDocument(name: SQL | string, summary: SQL | string, url: SQL | string) {
  return sql`setweight(to_tsvector('simple', coalesce(${name}, '')), 'A') || setweight(to_tsvector('simple', coalesce(${summary}, '')), 'B') || setweight(to_tsvector('simple', regexp_replace(coalesce(${url}, ''), '[/:._-]+', ' ', 'g')), 'C')`;
}

/** Local Repos: how this instance uses one git repository (Pepeunit's `repos` + registry row). */
export const repos = pgTable(
  "repos",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    ownerId: uuid("owner_id").references(() => users.id, { onDelete: "set null" }),
    name: text("name").notNull().unique("repos_name_unique"),
    summary: text("summary").notNull().default(""),
    repositoryUrl: text("repository_url").notNull(),
    platform: text("platform", { enum: GIT_PLATFORMS }).notNull(),
    defaultBranch: text("default_branch"),
    isCompilable: boolean("is_compilable").notNull().default(false),
    visibility: text("visibility", { enum: VISIBILITY_LEVELS }).notNull().default("Public"),
    versions: jsonb("versions").$type<RepoVersion[]>().notNull().default([]),
    registryId: uuid("registry_id"),
    source: text("source", { enum: ROW_SOURCES }).notNull().default("node"),
    searchDocument: tsvector("search_document")
      .notNull()
      .generatedAlwaysAs(
        (): SQL => repoSearchDocument(sql`name`, sql`summary`, sql`repository_url`),
      ),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check("repos_platform_check", sql`${table.platform} in (${sqlList(GIT_PLATFORMS)})`),
    check("repos_visibility_check", sql`${table.visibility} in (${sqlList(VISIBILITY_LEVELS)})`),
    check("repos_source_check", sql`${table.source} in (${sqlList(ROW_SOURCES)})`),
    check("repos_versions_is_array", sql`jsonb_typeof(${table.versions}) = 'array'`),
    index("repos_search_document_idx").using("gin", table.searchDocument),
    index("repos_public_recency_idx")
      .on(sql`${table.updatedAt} desc`)
      .where(sql`${table.visibility} = 'Public'`),
    index("repos_owner_id_idx").on(table.ownerId),
  ],
);

/** Local Units: one physical device built from a Repo. Secrets (env, state storage) are never stored here. */
export const units = pgTable(
  "units",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    repoId: uuid("repo_id")
      .notNull()
      .references(() => repos.id, { onDelete: "cascade" }),
    ownerId: uuid("owner_id").references(() => users.id, { onDelete: "set null" }),
    name: text("name").notNull().unique("units_name_unique"),
    visibility: text("visibility", { enum: VISIBILITY_LEVELS }).notNull().default("Public"),
    source: text("source", { enum: ROW_SOURCES }).notNull().default("node"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check("units_visibility_check", sql`${table.visibility} in (${sqlList(VISIBILITY_LEVELS)})`),
    check("units_source_check", sql`${table.source} in (${sqlList(ROW_SOURCES)})`),
    index("units_repo_id_idx").on(table.repoId),
  ],
);

/** Public fields of a Unit's MQTT topics. */
export const unitNodes = pgTable(
  "unit_nodes",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    unitId: uuid("unit_id")
      .notNull()
      .references(() => units.id, { onDelete: "cascade" }),
    type: text("type", { enum: UNIT_NODE_TYPES }).notNull(),
    topicName: text("topic_name").notNull(),
    visibility: text("visibility", { enum: VISIBILITY_LEVELS }).notNull().default("Public"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check("unit_nodes_type_check", sql`${table.type} in (${sqlList(UNIT_NODE_TYPES)})`),
    check(
      "unit_nodes_visibility_check",
      sql`${table.visibility} in (${sqlList(VISIBILITY_LEVELS)})`,
    ),
    index("unit_nodes_unit_id_idx").on(table.unitId),
  ],
);

/** When the importer last mirrored a Pepeunit table, for incremental runs. */
export const importCursors = pgTable("import_cursors", {
  tableName: text("table_name").primaryKey(),
  lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
  lastRunAt: timestamp("last_run_at", { withTimezone: true }).notNull().defaultNow(),
});

export type Repo = typeof repos.$inferSelect;
export type NewRepo = typeof repos.$inferInsert;
export type Unit = typeof units.$inferSelect;
export type NewUnit = typeof units.$inferInsert;
export type UnitNode = typeof unitNodes.$inferSelect;
export type NewUnitNode = typeof unitNodes.$inferInsert;

export const CATALOGUE_ENTITY_KINDS = ["repo", "unit"] as const;
export type CatalogueEntityKind = (typeof CATALOGUE_ENTITY_KINDS)[number];

/**
 * Transactional outbox of catalogue changes. Every write to `repos`, `units` or `unit_nodes`
 * adds a row in the same transaction. The worker turns rows into ActivityPub deliveries, so a
 * crash between commit and delivery loses nothing.
 */
export const catalogueChanges = pgTable(
  "catalogue_changes",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    entityKind: text("entity_kind", { enum: CATALOGUE_ENTITY_KINDS }).notNull(),
    entityId: uuid("entity_id").notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    check(
      "catalogue_changes_entity_kind_check",
      sql`${table.entityKind} in (${sqlList(CATALOGUE_ENTITY_KINDS)})`,
    ),
  ],
);

/**
 * Record of what this node has announced to its followers, per local entity. The publisher
 * chooses Create, Update or Delete from it and the current row alone, whatever happened between.
 */
export const announcedEntities = pgTable("announced_entities", {
  entityId: uuid("entity_id").primaryKey(),
  entityKind: text("entity_kind", { enum: CATALOGUE_ENTITY_KINDS }).notNull(),
  /** Repo id of a Unit, kept so a Delete can still name the Repo after the row is gone. */
  repoId: uuid("repo_id"),
  announcedAt: timestamp("announced_at", { withTimezone: true }).notNull().defaultNow(),
});
