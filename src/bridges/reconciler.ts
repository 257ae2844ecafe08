/**
 * Makes the local broker run the bridges stored in the database: every active bridge this instance imports
 * becomes an `in` bridge, every bridge it exports becomes an export grant. Routes of banned
 * topics and bridges of suspended or banned peers are left out, so a ban stops the traffic at the
 * next reconciliation and its expiry brings the traffic back.
 */
import { createHash } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import type { DatabaseLike } from "../db/client.ts";
import { bridgeReconciliation } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import type { PolicyEngine } from "../policy/types.ts";
import {
  type ApplyReport,
  type BridgeSpec,
  type BrokerBridgeDriver,
  checkBridgeSpec,
  type DesiredBrokerState,
  type ExportGrant,
} from "./driver.ts";
import { type BridgeWithRoutes, listActiveBridges, recordBridgeEvent } from "./store.ts";

const logger = getNodeLogger("bridges", "reconciler");

export interface ReconcilerOptions {
  db: DatabaseLike;
  driver: BrokerBridgeDriver;
  policy: PolicyEngine;
  /** This instance's Pepeunit domain. */
  localDomain: string;
  /** Topics banned now; their routes are not bridged. */
  bannedTopics: (now: Date) => Promise<ReadonlySet<string>>;
  now?: () => Date;
}

export interface DesiredStateResult {
  state: DesiredBrokerState;
  /** Routes and bridges left out, with the reason, for the log and the API. */
  skipped: { bridgeId: string; topic?: string; reason: string }[];
}

/** Builds the broker state from active bridges, bans and the federation policy. */
export function buildDesiredState(
  active: readonly BridgeWithRoutes[],
  options: {
    localDomain: string;
    policy: PolicyEngine;
    bannedTopics: ReadonlySet<string>;
    now: Date;
  },
): DesiredStateResult {
  const bridges: BridgeSpec[] = [];
  const grants: ExportGrant[] = [];
  const skipped: DesiredStateResult["skipped"] = [];

  for (const bridge of active) {
    const decision = options.policy.decide(bridge.peerHost, options.now);
    if (decision.action === "suspend") {
      skipped.push({ bridgeId: bridge.id, reason: `peer suspended: ${decision.reason}` });
      continue;
    }
    if (!bridge.brokerUsername || !bridge.brokerPassword) {
      skipped.push({ bridgeId: bridge.id, reason: "no broker credentials" });
      continue;
    }

    if (bridge.role === "exporter") {
      grants.push({
        id: bridge.id,
        username: bridge.brokerUsername,
        password: bridge.brokerPassword,
        topics: bridge.routes.map((route) => route.topic),
      });
      continue;
    }

    const routes = [];
    for (const route of bridge.routes) {
      if (options.bannedTopics.has(route.topic)) {
        skipped.push({ bridgeId: bridge.id, topic: route.topic, reason: "topic banned" });
        continue;
      }
      routes.push({ topic: route.topic, qos: route.qos === 1 ? (1 as const) : (0 as const) });
    }
    if (routes.length === 0 || !bridge.brokerUrl) {
      if (!bridge.brokerUrl) skipped.push({ bridgeId: bridge.id, reason: "no broker URL" });
      continue;
    }
    const spec: BridgeSpec = {
      id: bridge.id,
      direction: "in",
      remote: {
        url: bridge.brokerUrl,
        username: bridge.brokerUsername,
        password: bridge.brokerPassword,
        clientId: bridge.brokerUsername,
      },
      routes,
    };
    try {
      checkBridgeSpec(spec, options.localDomain, bridge.originDomain);
    } catch (error) {
      skipped.push({ bridgeId: bridge.id, reason: String(error) });
      continue;
    }
    bridges.push(spec);
  }
  return { state: { bridges, grants }, skipped };
}

/** Hashes a desired state, so the administrator can tell whether the broker is current. */
export function hashDesiredState(state: DesiredBrokerState): string {
  const canonical = {
    bridges: [...state.bridges].sort((a, b) => a.id.localeCompare(b.id)),
    grants: [...state.grants].sort((a, b) => a.id.localeCompare(b.id)),
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

export interface ReconcileOutcome {
  report: ApplyReport;
  skipped: DesiredStateResult["skipped"];
  stateHash: string;
}

/** Runs one reconciliation and records its outcome; throws when the driver fails. */
export async function reconcileBridges(options: ReconcilerOptions): Promise<ReconcileOutcome> {
  const now = options.now?.() ?? new Date();
  const active = await listActiveBridges(options.db);
  const { state, skipped } = buildDesiredState(active, {
    localDomain: options.localDomain,
    policy: options.policy,
    bannedTopics: await options.bannedTopics(now),
    now,
  });
  const stateHash = hashDesiredState(state);

  let report: ApplyReport;
  try {
    report = await options.driver.apply(state);
  } catch (error) {
    const previous = await readReconciliation(options.db);
    await saveOutcome(options.db, options.driver.kind, now, { error: String(error) });
    // Each bridge's history gets the failure once, not at every retry of the same failure.
    if (previous?.lastError !== String(error)) {
      for (const bridge of active) {
        await recordBridgeEvent(options.db, bridge.id, "apply_failed", "reconciler", {
          driver: options.driver.kind,
          error: String(error),
        });
      }
    }
    throw error;
  }
  await saveOutcome(options.db, options.driver.kind, now, { stateHash });

  const changed = [
    ...report.created.map((id) => ({ id, change: "created" })),
    ...report.updated.map((id) => ({ id, change: "updated" })),
    ...report.removed.map((id) => ({ id, change: "removed" })),
  ];
  const known = new Set(active.map((bridge) => bridge.id));
  for (const { id, change } of changed) {
    // Removed resources may belong to bridges that ended; their history still takes the event.
    await recordBridgeEvent(options.db, id, "applied", "reconciler", {
      change,
      driver: options.driver.kind,
      restarted: report.restarted,
      ...(known.has(id) ? {} : { ended: true }),
    });
  }
  if (changed.length > 0) {
    logger.info(
      "Broker {driver} reconciled: {created} created, {updated} updated, {removed} removed, restarted {restarted}",
      {
        driver: options.driver.kind,
        created: report.created.length,
        updated: report.updated.length,
        removed: report.removed.length,
        restarted: report.restarted,
        skipped,
      },
    );
  }
  return { report, skipped, stateHash };
}

async function saveOutcome(
  db: DatabaseLike,
  driver: string,
  at: Date,
  outcome: { stateHash: string } | { error: string },
): Promise<void> {
  const success = "stateHash" in outcome;
  const values = {
    driver,
    lastAttemptAt: at,
    ...(success
      ? { appliedStateHash: outcome.stateHash, lastSuccessAt: at, lastError: null }
      : { lastError: outcome.error }),
  };
  await db
    .insert(bridgeReconciliation)
    .values({ id: 1, ...values })
    .onConflictDoUpdate({
      target: bridgeReconciliation.id,
      set: { ...values, updatedAt: sql`now()` },
    });
}

/** Returns the last reconciliation, for the API. */
export async function readReconciliation(db: DatabaseLike) {
  const [row] = await db.select().from(bridgeReconciliation).where(eq(bridgeReconciliation.id, 1));
  return row ?? null;
}
