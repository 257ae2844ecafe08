/**
 * Starts a node in the configured role: resolves the database (embedded or configured), applies
 * migrations, builds the federation and HTTP app, and starts the web server and worker jobs.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import type pg from "pg";
import { backfillDueFollows } from "../federation/backfill.ts";
import { PgKvStore } from "../federation/kv.ts";
import { loadReportSigningKey } from "../federation/load-report-keys.ts";
import { createFederationPort } from "../federation/port.ts";
import { publishPendingChanges } from "../federation/publisher.ts";
import { PgMessageQueue } from "../federation/queue.ts";
import { createNodeFederation, type NodeFederation } from "../federation/setup.ts";
import { resolveAdminToken } from "./admin-token.ts";
import { startBillingJob } from "./billing/job.ts";
import { createUnitAccess } from "./billing/unit-access.ts";
import {
  createBridgeDriver,
  startBridgeMonitor,
  startBridgeReconciler,
} from "./bridges/runtime.ts";
import type { Config } from "./config.ts";
import { createDatabase, createPool, type Database, describeDatabaseUrl } from "./db/client.ts";
import { type EmbeddedServer, startEmbeddedPostgres } from "./db/embedded.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { startGradingJob } from "./grading/job.ts";
import { createApp } from "./http/app.ts";
import { createPepeunitSourcePool, startPepeunitImportLoop } from "./import/loop.ts";
import { runPeriodically } from "./jobs/loop.ts";
import { getNodeLogger } from "./logging.ts";
import { ErrorCounter } from "./metering/errors/counter.ts";
import { type MeteringRuntime, startMetering } from "./metering/runtime.ts";
import { startPaymentJobs } from "./payments/runtime.ts";
import { expireBans, recordViolation } from "./policy/bans.ts";
import { banSettingsFromConfig } from "./policy/bans-types.ts";
import { createInboxDetectors, type InboxDetectors } from "./policy/detectors.ts";
import { DatabasePolicyEngine } from "./policy/engine.ts";
import { createPolicyGate } from "./policy/gate.ts";
import { createInboxRateLimiter } from "./policy/rate-limit.ts";
import { expireDomainRules } from "./policy/rules.ts";
import { issueLoadReportIfDue } from "./reports/chain.ts";
import type { NodeServices } from "./services.ts";

const logger = getNodeLogger("server");

export interface RunningNode {
  services: NodeServices;
  federation: NodeFederation;
  /** The MQTT broker this process meters, when it runs the tap (embedded or configured). */
  brokerUrl: URL | undefined;
  /** The port the HTTP server listens on, when the role serves HTTP. */
  port: number | undefined;
  stop(): Promise<void>;
}

export interface DatabaseHandle {
  pool: pg.Pool;
  db: Database;
  url: string;
  embedded: EmbeddedServer | undefined;
}

/** Connects to the configured database, or starts the embedded one, and applies migrations. */
export async function openDatabase(config: Config): Promise<DatabaseHandle> {
  let url = config.databaseUrl;
  let embedded: EmbeddedServer | undefined;
  if (!url) {
    await mkdir(config.dataDir, { recursive: true });
    embedded = await startEmbeddedPostgres({
      directory: path.join(config.dataDir, "postgres"),
      port: config.embeddedPostgresPort,
    });
    url = embedded.url;
  }
  logger.info("Using PostgreSQL at {url}", { url: describeDatabaseUrl(url) });
  const pool = createPool({ url, max: config.databasePoolSize });
  const db = createDatabase(pool);
  try {
    await migrateDatabase(db);
  } catch (error) {
    await pool.end();
    await embedded?.stop();
    const setting = config.databaseUrl ? "PU_NODE_DATABASE_URL" : "the embedded server";
    const reason = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    throw new Error(
      `PostgreSQL at ${describeDatabaseUrl(url)} (${setting}) cannot be used: ${String(reason)}. ` +
        "Check that the server runs, that the URL, user and password are right, and that the " +
        "user may create tables in the database.",
      { cause: error },
    );
  }
  return { pool, db, url, embedded };
}

function listenFailureMessage(error: NodeJS.ErrnoException, config: Config): string {
  const address = `${config.listenHost}:${config.port}`;
  if (error.code === "EADDRINUSE") {
    return `Cannot listen on ${address}: the port is in use; set PU_NODE_PORT to a free port`;
  }
  if (error.code === "ENOTFOUND" || error.code === "EADDRNOTAVAIL") {
    return `Cannot listen on ${address}: ${error.code}; set PU_NODE_LISTEN_HOST to an address of this machine, such as 127.0.0.1 or 0.0.0.0`;
  }
  return `Cannot listen on ${address}: ${error.message}`;
}

export interface StartOptions {
  /** Counter behind the logging sink of error records; a fresh one when omitted (tests). */
  errorCounter?: ErrorCounter;
}

export async function startNode(config: Config, options: StartOptions = {}): Promise<RunningNode> {
  logger.info("Starting Pepeunit Node as role {role} for {origin}", {
    role: config.role,
    origin: config.origin.href,
  });
  await mkdir(config.dataDir, { recursive: true });
  const database = await openDatabase(config);
  const { pool, db } = database;

  const kv = new PgKvStore(pool);
  const queue = new PgMessageQueue(pool, "fedify", {
    pollIntervalMs: config.queuePollIntervalMs,
    // Deliveries wait on the network, not the CPU, so a few run side by side.
    concurrency: 4,
  });
  const policy = new DatabasePolicyEngine(db, { mode: config.federationMode });
  await policy.reload();
  policy.start();
  const federation = createNodeFederation({
    config,
    db,
    kv,
    queue,
    policy,
  });
  const controller = new AbortController();
  const background: Promise<unknown>[] = [];
  const errorCounter = options.errorCounter ?? new ErrorCounter();
  // The monitor watches imported bridge topics in the process that runs the tap.
  const bridgeMonitor =
    config.role === "all" || config.role === "tap"
      ? startBridgeMonitor({ config, db, signal: controller.signal })
      : undefined;
  if (bridgeMonitor) background.push(...bridgeMonitor.jobs);
  let metering: MeteringRuntime;
  try {
    metering = await startMetering({
      config,
      pool,
      db,
      errorCounter,
      queues: { fedify: queue },
      signal: controller.signal,
      ...(bridgeMonitor
        ? { onTapMessage: (topic, nowMs) => bridgeMonitor.monitor.observe(topic, nowMs) }
        : {}),
    });
  } catch (error) {
    controller.abort();
    await Promise.allSettled(background);
    await policy.stop();
    await pool.end();
    await database.embedded?.stop();
    throw error;
  }
  background.push(...metering.jobs);

  const services: NodeServices = {
    config,
    pool,
    db,
    federation: createFederationPort(federation, db, config, policy),
    adminToken: await resolveAdminToken(config.adminToken, config.dataDir),
    timeSeries: metering.store,
    errorCounter,
    policy,
  };
  const bridgeDriver =
    config.role === "all" || config.role === "worker"
      ? await createBridgeDriver(config)
      : undefined;
  if (config.role === "all" || config.role === "worker") {
    background.push(federation.startQueue(undefined, { signal: controller.signal }));
    background.push(
      runPeriodically(
        {
          name: "publish-catalogue-changes",
          intervalMs: config.queuePollIntervalMs,
          run: async () => (await publishPendingChanges(federation, db, config.origin)) > 0,
        },
        controller.signal,
      ),
      runPeriodically(
        {
          name: "backfill-followed-instances",
          intervalMs: config.queuePollIntervalMs * 5,
          run: async () => {
            await backfillDueFollows(federation, db, config.origin, policy);
            return false;
          },
        },
        controller.signal,
      ),
      runPeriodically(
        {
          name: "expire-domain-rules",
          intervalMs: 60_000,
          run: async () => {
            await expireDomainRules(db);
            return false;
          },
        },
        controller.signal,
      ),
      ...(bridgeDriver
        ? [
            startBridgeReconciler({
              config,
              pool,
              db,
              policy,
              driver: bridgeDriver,
              signal: controller.signal,
            }),
          ]
        : []),
      runPeriodically(
        {
          name: "expire-bans",
          intervalMs: 60_000,
          run: async () => {
            await expireBans(db, new Date());
            return false;
          },
        },
        controller.signal,
      ),
      startGradingJob({
        pool,
        db,
        store: services.timeSeries,
        settings: config.grading,
        signal: controller.signal,
        // Each graded hour gets its signed load report for scrapers of /api/v1/load_limit.
        afterCheck: async () => {
          await issueLoadReportIfDue({
            db,
            store: services.timeSeries,
            config,
            signingKey: () => loadReportSigningKey(db, config.origin),
          });
        },
      }),
      ...startPaymentJobs({ config, pool, db, signal: controller.signal }),
      // Bills graded hours, grants the monthly free tokens and stops or resumes Units.
      startBillingJob({
        pool,
        db,
        config,
        store: services.timeSeries,
        access: createUnitAccess(config),
        signal: controller.signal,
      }),
      runPeriodically(
        {
          name: "clean-expired-kv",
          intervalMs: 10 * 60_000,
          run: async () => {
            await kv.cleanUpExpired();
            return false;
          },
        },
        controller.signal,
      ),
    );
  }

  let importSource: pg.Pool | undefined;
  if ((config.role === "all" || config.role === "worker") && config.pepeunitDatabaseUrl) {
    importSource = createPepeunitSourcePool(config.pepeunitDatabaseUrl);
    background.push(
      startPepeunitImportLoop({
        db,
        source: importSource,
        intervalSeconds: config.pepeunitImportIntervalSeconds,
        signal: controller.signal,
      }),
    );
  }

  let server: ServerType | undefined;
  let port: number | undefined;
  let detectors: InboxDetectors | undefined;
  if (config.role === "all" || config.role === "web") {
    const gate = createPolicyGate({ engine: policy, limiter: createInboxRateLimiter(config) });
    const banSettings = banSettingsFromConfig(config);
    detectors = createInboxDetectors({
      thresholds: config.bans,
      report: (violation) => recordViolation(db, violation, banSettings),
    });
    const app = createApp(services, federation, metering.metrics, gate, detectors);
    const listening = await new Promise<{ server: ServerType; port: number }>((resolve, reject) => {
      const created = serve(
        { fetch: app.fetch, hostname: config.listenHost, port: config.port },
        (info) => resolve({ server: created, port: info.port }),
      );
      created.once("error", reject);
    }).catch(async (error: NodeJS.ErrnoException) => {
      controller.abort();
      await Promise.allSettled(background);
      await importSource?.end();
      await metering.stop();
      await policy.stop();
      await policy.stop();
      await pool.end();
      await database.embedded?.stop();
      throw new Error(listenFailureMessage(error, config), { cause: error });
    });
    server = listening.server;
    port = listening.port;
    logger.info("Listening on http://{host}:{port}; public origin {origin}", {
      host: config.listenHost,
      port,
      origin: config.origin.href,
    });
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info("Stopping the node");
      if (server) {
        const closing = server;
        await new Promise<void>((resolve) => closing.close(() => resolve()));
        logger.info("HTTP server closed");
        // Violations reported by the last requests are written before the pool closes.
        await detectors?.settled();
      }
      controller.abort();
      await Promise.allSettled(background);
      logger.info("Worker jobs stopped");
      await importSource?.end();
      await metering.stop();
      await policy.stop();
      await pool.end();
      logger.info("Database pool closed");
      await database.embedded?.stop();
    })();
    return stopping;
  };
  return { services, federation, port, brokerUrl: metering.brokerUrl, stop };
}
