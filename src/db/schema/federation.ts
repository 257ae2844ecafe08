import type { webcrypto } from "node:crypto";
import { type SQL, sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  check,
  index,
  integer,
  json,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";
import { type GitPlatform, type RepoVersion, repoSearchDocument, tsvector } from "./catalogue.ts";
import { createdAt, sqlList, updatedAt } from "./common.ts";

/** Key pairs of this node's actors (the instance actor and each Repo actor), as JWK. */
export const actorKeys = pgTable(
  "actor_keys",
  {
    actorIdentifier: text("actor_identifier").notNull(),
    algorithm: text("algorithm", { enum: ["RSASSA-PKCS1-v1_5", "Ed25519"] }).notNull(),
    privateKey: jsonb("private_key").$type<webcrypto.JsonWebKey>().notNull(),
    publicKey: jsonb("public_key").$type<webcrypto.JsonWebKey>().notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    primaryKey({ name: "actor_keys_pk", columns: [table.actorIdentifier, table.algorithm] }),
  ],
);

/** ActivityPub actors of other servers that this node has seen: mostly other nodes' instance actors. */
export const remoteActors = pgTable(
  "remote_actors",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    iri: text("iri").notNull().unique("remote_actors_iri_unique"),
    /** `host[:port]` of the actor IRI, lower-case: the unit that federation policy works on. */
    host: text("host").notNull(),
    type: text("type").notNull(),
    name: text("name"),
    inboxUrl: text("inbox_url").notNull(),
    sharedInboxUrl: text("shared_inbox_url"),
    outboxUrl: text("outbox_url"),
    /** True when the actor is another Pepeunit node's instance actor. */
    isPepeunitNode: boolean("is_pepeunit_node").notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [index("remote_actors_host_idx").on(table.host)],
);

export const FOLLOW_STATES = ["pending", "accepted", "rejected"] as const;
export type FollowState = (typeof FOLLOW_STATES)[number];

/** Follows this node's instance actor sent to other servers. */
export const outboundFollows = pgTable(
  "outbound_follows",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    remoteActorId: uuid("remote_actor_id")
      .notNull()
      .unique("outbound_follows_remote_actor_unique")
      .references(() => remoteActors.id, { onDelete: "cascade" }),
    followActivityIri: text("follow_activity_iri").notNull(),
    state: text("state", { enum: FOLLOW_STATES }).notNull().default("pending"),
    /** When the peer's outbox was last read into the catalogue; null means a backfill is due. */
    backfilledAt: timestamp("backfilled_at", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check("outbound_follows_state_check", sql`${table.state} in (${sqlList(FOLLOW_STATES)})`),
  ],
);

/** Followers of this node's actors: `instance` or a Repo id as the followed actor identifier. */
export const inboundFollows = pgTable(
  "inbound_follows",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    actorIdentifier: text("actor_identifier").notNull(),
    remoteActorId: uuid("remote_actor_id")
      .notNull()
      .references(() => remoteActors.id, { onDelete: "cascade" }),
    followActivityIri: text("follow_activity_iri").notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex("inbound_follows_actor_follower_unique").on(
      table.actorIdentifier,
      table.remoteActorId,
    ),
  ],
);

/** Repos published by other instances, as last received; the federated half of the catalogue. */
export const federatedRepos = pgTable(
  "federated_repos",
  {
    iri: text("iri").primaryKey(),
    originHost: text("origin_host").notNull(),
    /** The Pepeunit UUID of the Repo on its own instance, when the publisher sends it. */
    pepeunitId: uuid("pepeunit_id"),
    name: text("name").notNull(),
    summary: text("summary").notNull().default(""),
    repositoryUrl: text("repository_url").notNull(),
    platform: text("platform").$type<GitPlatform>().notNull(),
    defaultBranch: text("default_branch"),
    isCompilable: boolean("is_compilable").notNull().default(false),
    versions: jsonb("versions").$type<RepoVersion[]>().notNull().default([]),
    publishedAt: timestamp("published_at", { withTimezone: true }),
    /** `updated` of the newest version received; older Updates arriving late are ignored. */
    remoteUpdatedAt: timestamp("remote_updated_at", { withTimezone: true }),
    searchDocument: tsvector("search_document")
      .notNull()
      .generatedAlwaysAs(
        (): SQL => repoSearchDocument(sql`name`, sql`summary`, sql`repository_url`),
      ),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    check("federated_repos_versions_is_array", sql`jsonb_typeof(${table.versions}) = 'array'`),
    index("federated_repos_search_document_idx").using("gin", table.searchDocument),
    index("federated_repos_origin_host_idx").on(table.originHost),
    // Recency order of the search (newest first); without it a search with no words or with
    // only filters sorts the whole table.
    index("federated_repos_recency_idx").on(
      sql`(coalesce(${table.remoteUpdatedAt}, ${table.publishedAt}, ${table.receivedAt})) desc`,
      sql`${table.iri} desc`,
    ),
    index("federated_repos_origin_recency_idx").on(
      table.originHost,
      sql`(coalesce(${table.remoteUpdatedAt}, ${table.publishedAt}, ${table.receivedAt})) desc`,
      sql`${table.iri} desc`,
    ),
  ],
);

/** A UnitNode as published inside a federated Unit. */
export interface FederatedUnitNode {
  id: string;
  type: "Input" | "Output";
  topicName: string;
}

/** Units published by other instances, attached to their federated Repo. */
export const federatedUnits = pgTable(
  "federated_units",
  {
    iri: text("iri").primaryKey(),
    repoIri: text("repo_iri")
      .notNull()
      .references(() => federatedRepos.iri, { onDelete: "cascade" }),
    originHost: text("origin_host").notNull(),
    pepeunitId: uuid("pepeunit_id"),
    name: text("name").notNull(),
    nodes: jsonb("nodes").$type<FederatedUnitNode[]>().notNull().default([]),
    remoteUpdatedAt: timestamp("remote_updated_at", { withTimezone: true }),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    check("federated_units_nodes_is_array", sql`jsonb_typeof(${table.nodes}) = 'array'`),
    index("federated_units_repo_iri_idx").on(table.repoIri),
  ],
);

/** Ids of inbound activities already applied; a repeated delivery changes nothing. */
export const processedActivities = pgTable(
  "processed_activities",
  {
    activityIri: text("activity_iri").primaryKey(),
    actorIri: text("actor_iri").notNull(),
    type: text("type").notNull(),
    processedAt: timestamp("processed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [index("processed_activities_processed_at_idx").on(table.processedAt)],
);

/**
 * Backing table of the Fedify key-value store (`federation/kv.ts`). The key keeps Fedify's key
 * parts as an array, so a prefix matches whole parts only.
 */
export const fedifyKv = pgTable(
  "fedify_kv",
  {
    key: text("key").array().primaryKey(),
    value: jsonb("value").notNull(),
    /** Null for entries without a TTL; an entry past this instant is treated as absent. */
    expiresAt: timestamp("expires_at", { withTimezone: true }),
  },
  (table) => [
    check("fedify_kv_key_not_empty", sql`cardinality(${table.key}) > 0`),
    index("fedify_kv_expires_at_idx")
      .on(table.expiresAt)
      .where(sql`${table.expiresAt} is not null`),
  ],
);

/**
 * Backing table of the Fedify message queue (`federation/queue.ts`); several named queues share
 * it. A row is deleted once its handler succeeds, so the table contains only pending, in-flight and
 * failed messages.
 */
export const queueMessages = pgTable(
  "queue_messages",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    queue: text("queue").notNull(),
    /** `json`, not `jsonb`: the payload is only stored and returned, and `json` accepts `\u0000`. */
    payload: json("payload").notNull(),
    /** Messages with the same key are handled one at a time, in `id` order. */
    orderingKey: text("ordering_key"),
    availableAt: timestamp("available_at", { withTimezone: true }).notNull().defaultNow(),
    /** Set while a worker handles the message; an expired lease makes it available again. */
    leasedUntil: timestamp("leased_until", { withTimezone: true }),
    /** Identifies the current lease, so a worker whose lease expired cannot finish another's. */
    leaseToken: uuid("lease_token"),
    /** How many times a worker has taken the message, including the current lease. */
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    /** Set when the message ran out of attempts; failed rows are kept and never taken again. */
    failedAt: timestamp("failed_at", { withTimezone: true }),
    createdAt: createdAt(),
  },
  (table) => [
    check("queue_messages_attempts_check", sql`${table.attempts} >= 0`),
    check(
      "queue_messages_lease_check",
      sql`(${table.leasedUntil} is null) = (${table.leaseToken} is null)`,
    ),
    index("queue_messages_pending_idx")
      .on(table.queue, table.id)
      .where(sql`${table.failedAt} is null`),
    index("queue_messages_ordering_key_idx")
      .on(table.queue, table.orderingKey, table.id)
      .where(sql`${table.orderingKey} is not null and ${table.failedAt} is null`),
    index("queue_messages_available_at_idx")
      .on(table.queue, table.availableAt)
      .where(sql`${table.failedAt} is null`),
  ],
);

export type RemoteActor = typeof remoteActors.$inferSelect;
export type FederatedRepo = typeof federatedRepos.$inferSelect;
export type FederatedUnit = typeof federatedUnits.$inferSelect;
