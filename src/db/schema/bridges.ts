import { sql } from "drizzle-orm";
import {
  bigserial,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, sqlList, updatedAt } from "./common.ts";
import { remoteActors } from "./federation.ts";

/**
 * `importer`: this instance subscribes to foreign UnitNode topics (it sent the Offer);
 * `exporter`: another instance subscribes to this instance's topics (it received the Offer).
 */
export const BRIDGE_ROLES = ["importer", "exporter"] as const;
export type BridgeRole = (typeof BRIDGE_ROLES)[number];

/**
 * - `requested`: the importer sent its Offer and waits for the response;
 * - `active`: accepted; the broker should run it;
 * - `rejected`: the exporter declined the Offer, or withdrew an accepted bridge;
 * - `cancelled`: the importer withdrew it (Undo of the Offer).
 */
export const BRIDGE_STATES = ["requested", "active", "rejected", "cancelled"] as const;
export type BridgeState = (typeof BRIDGE_STATES)[number];

/**
 * MQTT bridges agreed with other instances over ActivityPub. Both instances store a bridge under
 * the same id, which the importer chose, so broker resources on both sides carry the same name.
 */
export const bridges = pgTable(
  "bridges",
  {
    id: uuid("id").primaryKey(),
    role: text("role", { enum: BRIDGE_ROLES }).notNull(),
    /** The other instance's instance actor. */
    remoteActorId: uuid("remote_actor_id")
      .notNull()
      .references(() => remoteActors.id, { onDelete: "restrict" }),
    /** Canonical host of the other node; the unit of federation policy and of domain bans. */
    peerHost: text("peer_host").notNull(),
    /** The exporter's Pepeunit domain: the first level of every topic of this bridge. */
    originDomain: text("origin_domain").notNull(),
    state: text("state", { enum: BRIDGE_STATES }).notNull(),
    /** IRI of the importer's Offer; Accept, Reject and Undo refer to it. */
    offerIri: text("offer_iri").notNull().unique("bridges_offer_iri_unique"),
    /**
     * The exporter's broker as the importer connects to it (`mqtt://` or `mqtts://`), and the
     * credentials the exporter issued. Kept in plain text because the broker configuration must
     * be rewritten from them at every reconciliation; they open only the bridged topics.
     */
    brokerUrl: text("broker_url"),
    brokerUsername: text("broker_username"),
    brokerPassword: text("broker_password"),
    /** The reason the bridge was rejected or cancelled. */
    endReason: text("end_reason"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    check("bridges_role_check", sql`${table.role} in (${sqlList(BRIDGE_ROLES)})`),
    check("bridges_state_check", sql`${table.state} in (${sqlList(BRIDGE_STATES)})`),
    check(
      "bridges_active_credentials_check",
      sql`${table.state} <> 'active' or (${table.brokerUsername} is not null and ${table.brokerPassword} is not null and (${table.role} = 'exporter' or ${table.brokerUrl} is not null))`,
    ),
    index("bridges_peer_host_idx").on(table.peerHost),
    index("bridges_state_idx").on(table.state),
  ],
);

export type BridgeRow = typeof bridges.$inferSelect;

/**
 * The UnitNode topics one bridge carries. `max_mps` is the agreed limit: the importer bans a
 * topic whose measured rate stays above it.
 */
export const bridgeRoutes = pgTable(
  "bridge_routes",
  {
    bridgeId: uuid("bridge_id")
      .notNull()
      .references(() => bridges.id, { onDelete: "cascade" }),
    /** The exporter's Output UnitNode. */
    unitNodeId: uuid("unit_node_id").notNull(),
    /** `<origin domain>/<unit node id>`, the same on both brokers. */
    topic: text("topic").notNull(),
    qos: integer("qos").notNull(),
    maxMps: integer("max_mps").notNull(),
    /** The importer's Input UnitNode this Output feeds, when the importer named one. */
    inputUnitNodeId: uuid("input_unit_node_id"),
  },
  (table) => [
    primaryKey({ name: "bridge_routes_pk", columns: [table.bridgeId, table.unitNodeId] }),
    check("bridge_routes_qos_check", sql`${table.qos} in (0, 1)`),
    check("bridge_routes_max_mps_check", sql`${table.maxMps} > 0`),
    index("bridge_routes_topic_idx").on(table.topic),
  ],
);

export type BridgeRouteRow = typeof bridgeRoutes.$inferSelect;

export const BRIDGE_EVENT_TYPES = [
  "requested",
  "offered",
  "accepted",
  "rejected",
  "cancelled",
  "applied",
  "apply_failed",
] as const;
export type BridgeEventType = (typeof BRIDGE_EVENT_TYPES)[number];

/** History of each bridge: agreement steps and broker reconciliations. */
export const bridgeEvents = pgTable(
  "bridge_events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    bridgeId: uuid("bridge_id").notNull(),
    type: text("type", { enum: BRIDGE_EVENT_TYPES }).notNull(),
    /** `admin`, `peer`, `reconciler`, `ban`. */
    actor: text("actor").notNull(),
    detail: jsonb("detail").$type<Record<string, unknown>>(),
    createdAt: createdAt(),
  },
  (table) => [
    index("bridge_events_bridge_idx").on(table.bridgeId, table.id),
    check("bridge_events_type_check", sql`${table.type} in (${sqlList(BRIDGE_EVENT_TYPES)})`),
  ],
);

/**
 * One row with the last reconciliation of the local broker, for the administrator and so that
 * a failed apply is visible after a restart.
 */
export const bridgeReconciliation = pgTable(
  "bridge_reconciliation",
  {
    id: integer("id").primaryKey(),
    driver: text("driver").notNull(),
    /** Hash of the desired state last applied successfully. */
    appliedStateHash: text("applied_state_hash"),
    lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true }),
    lastSuccessAt: timestamp("last_success_at", { withTimezone: true }),
    lastError: text("last_error"),
    updatedAt: updatedAt(),
  },
  (table) => [check("bridge_reconciliation_single_row", sql`${table.id} = 1`)],
);
