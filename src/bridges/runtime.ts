/**
 * Starts the bridge work of a node process: the broker reconciliation in the `worker` role (one
 * worker at a time, under an advisory lock) and the traffic monitor next to the tap.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type pg from "pg";
import type { Config } from "../config.ts";
import { AdvisoryLockHolder } from "../db/advisory-lock.ts";
import type { Database } from "../db/client.ts";
import { runPeriodically } from "../jobs/loop.ts";
import { getNodeLogger } from "../logging.ts";
import { recordViolation } from "../policy/bans.ts";
import { activeBannedTopics } from "../policy/bans-queries.ts";
import { banSettingsFromConfig } from "../policy/bans-types.ts";
import type { PolicyEngine } from "../policy/types.ts";
import type { BrokerBridgeDriver } from "./driver.ts";
import { EmqxBridgeDriver } from "./emqx-driver.ts";
import {
  type BridgeRateViolation,
  BridgeTrafficMonitor,
  loadImportedRouteLimits,
} from "./monitor.ts";
import { MosquittoBridgeDriver } from "./mosquitto-driver.ts";
import { reconcileBridges } from "./reconciler.ts";

const logger = getNodeLogger("bridges");

/** Advisory lock key of the bridge reconciler: "PUBRDG" as ASCII. */
const RECONCILER_LOCK_KEY = 0x505542524447;

/** How often the monitor rereads the active routes and compares rates with their limits. */
const MONITOR_REFRESH_MS = 5_000;
const MONITOR_CHECK_MS = 1_000;

/** Builds the driver that `PU_NODE_BRIDGE_DRIVER` names, or undefined for `off`. */
export async function createBridgeDriver(config: Config): Promise<BrokerBridgeDriver | undefined> {
  switch (config.bridgeDriver) {
    case "off":
      return undefined;
    case "emqx": {
      if (!config.emqxApiUrl)
        throw new Error("PU_NODE_EMQX_API_URL is required by the EMQX bridge driver");
      return new EmqxBridgeDriver({
        url: config.emqxApiUrl,
        apiKey: config.emqxApiKey,
        apiSecret: config.emqxApiSecret,
        localDomain: config.pepeunitDomain,
        tlsCaCertificates: config.bridgeCaFile
          ? await readFile(config.bridgeCaFile, "utf8").catch((error: unknown) => {
              throw new Error(
                `Cannot read PU_NODE_BRIDGE_CA_FILE ${config.bridgeCaFile}: ${String(error)}`,
              );
            })
          : undefined,
      });
    }
    case "mosquitto": {
      const { bridgeFile, passwordFile, aclFile, restartCommand, reloadCommand } = config.mosquitto;
      // loadConfig requires these for the mosquitto driver; the check keeps the types honest.
      if (!bridgeFile || !passwordFile || !aclFile || !restartCommand) {
        throw new Error(
          "The Mosquitto bridge driver needs PU_NODE_MOSQUITTO_* settings; see docs/bridges.md",
        );
      }
      return new MosquittoBridgeDriver({
        bridgeFile: path.resolve(bridgeFile),
        passwordFile: path.resolve(passwordFile),
        aclFile: path.resolve(aclFile),
        restart: { command: restartCommand },
        reload: { command: reloadCommand ?? restartCommand },
        localDomain: config.pepeunitDomain,
        ...(config.bridgeCaFile ? { caFile: path.resolve(config.bridgeCaFile) } : {}),
      });
    }
  }
}

/**
 * Runs the reconciler every `PU_NODE_BRIDGE_RECONCILE_SECONDS` until `signal` aborts. Only the
 * worker holding the advisory lock applies, so two workers never write the broker at once.
 */
export function startBridgeReconciler(options: {
  config: Config;
  pool: pg.Pool;
  db: Database;
  policy: PolicyEngine;
  driver: BrokerBridgeDriver;
  signal: AbortSignal;
}): Promise<void> {
  const { config, db, policy, driver } = options;
  const lock = new AdvisoryLockHolder(options.pool, RECONCILER_LOCK_KEY);
  options.signal.addEventListener("abort", () => void lock.release(), { once: true });
  logger.info("Reconciling bridges on {driver} every {seconds} s", {
    driver: driver.kind,
    seconds: config.bridgeReconcileSeconds,
  });
  return runPeriodically(
    {
      name: "reconcile-bridges",
      intervalMs: config.bridgeReconcileSeconds * 1000,
      run: async () => {
        if (!(await lock.hold())) return false;
        await reconcileBridges({
          db,
          driver,
          policy,
          localDomain: config.pepeunitDomain,
          bannedTopics: (now) => activeBannedTopics(db, now),
        });
        return false;
      },
    },
    options.signal,
  );
}

/**
 * Creates the monitor of imported bridge topics and its two loops: one rereads the routes, the
 * other compares rates with the agreed limits and records violations as topic bans.
 */
export function startBridgeMonitor(options: {
  config: Config;
  db: Database;
  signal: AbortSignal;
}): { monitor: BridgeTrafficMonitor; jobs: Promise<void>[] } {
  const { config, db } = options;
  const settings = banSettingsFromConfig(config);
  const monitor = new BridgeTrafficMonitor({
    windowSeconds: config.bridgeRateWindowSeconds,
    report: async (violation: BridgeRateViolation) => {
      const { evidence } = violation;
      const outcome = await recordViolation(
        db,
        {
          subject: { kind: "topic", domain: violation.peerHost, topic: violation.topic },
          condition: "bridged_mps",
          evidence: {
            count: evidence.measuredMps,
            windowSeconds: evidence.windowSeconds,
            // recordViolation bans from `limit` on; the monitor reports only rates above it.
            limit: evidence.maxMps,
            firstSeenAt: evidence.windowStart,
            lastSeenAt: evidence.windowEnd,
            samples: [{ bridgeId: evidence.bridgeId, messages: evidence.messages }],
            messages: evidence.messages,
            bridgeId: evidence.bridgeId,
          },
          now: new Date(),
        },
        settings,
      );
      if (outcome.action === "banned") {
        logger.warning("Banned bridged topic {topic} of {peerHost} until {expiresAt}", {
          topic: violation.topic,
          peerHost: violation.peerHost,
          expiresAt: outcome.ban.expiresAt?.toISOString() ?? "lifted by an administrator",
          domainBan: outcome.domainBan?.id ?? null,
        });
      }
    },
  });
  const jobs = [
    runPeriodically(
      {
        name: "refresh-bridge-routes",
        intervalMs: MONITOR_REFRESH_MS,
        run: async () => {
          monitor.setLimits(await loadImportedRouteLimits(db));
          return false;
        },
      },
      options.signal,
    ),
    runPeriodically(
      {
        name: "check-bridge-rates",
        intervalMs: MONITOR_CHECK_MS,
        run: async () => {
          await monitor.check(Date.now());
          return false;
        },
      },
      options.signal,
    ),
  ];
  return { monitor, jobs };
}
