/**
 * Issues load reports into the append-only chain. Each report is a compact JWS (EdDSA, the
 * instance actor's Ed25519 key) whose payload has the next sequence number and the SHA-256 of
 * the previous report's JWS. Issuing holds a transaction-level advisory lock, so two processes
 * never issue the same sequence number.
 */
import type { webcrypto } from "node:crypto";
import { asc, desc, gt, sql } from "drizzle-orm";
import { base64url, CompactSign } from "jose";
import { loadBillingSettings } from "../billing/settings-store.ts";
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import { type LoadReportRow, loadReports } from "../db/schema/index.ts";
import { latestCompletedRun } from "../grading/run.ts";
import { getNodeLogger } from "../logging.ts";
import type { TimeSeriesStore } from "../timeseries/store.ts";
import {
  type AggregationLoad,
  type AnyLoadReportPayload,
  buildLoadReportPayload,
  LOAD_REPORT_JWS_TYPE,
} from "./payload.ts";
import { sha256Hex } from "./tokens.ts";

const logger = getNodeLogger("reports");

const LOAD_REPORT_LOCK_KEY = 0x50554c52_5054;

/** The key that signs reports: the instance actor's Ed25519 private key and its key id URL. */
export interface ReportSigningKey {
  privateKey: webcrypto.CryptoKey;
  kid: string;
}

export interface IssueDependencies {
  db: Database;
  store: TimeSeriesStore;
  /** The whole configuration, because the first billing settings row is created from it. */
  config: Config;
  signingKey: () => Promise<ReportSigningKey>;
}

/** Reads the payload of a stored report, of any version, without checking its signature. */
export function readLoadReportPayload(jws: string): AnyLoadReportPayload {
  const encoded = jws.split(".")[1] ?? "";
  return JSON.parse(new TextDecoder().decode(base64url.decode(encoded))) as AnyLoadReportPayload;
}

/**
 * Signs and stores the next report from the latest completed grading run and the billing
 * settings in force; returns its row.
 */
export async function issueLoadReport(
  dependencies: IssueDependencies,
  now: Date = new Date(),
): Promise<LoadReportRow> {
  const { db, config } = dependencies;
  const key = await dependencies.signingKey();
  const run = await latestCompletedRun(db);
  const billing = await loadBillingSettings(db, config);

  const row = await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${LOAD_REPORT_LOCK_KEY})`);
    const [previous] = await tx
      .select()
      .from(loadReports)
      .orderBy(desc(loadReports.sequence))
      .limit(1);
    const previousAggregation: AggregationLoad | null = previous
      ? readLoadReportPayload(previous.jws).load.aggregation
      : null;
    const payload = await buildLoadReportPayload({
      origin: config.origin,
      domain: config.pepeunitDomain,
      billing,
      capacityMps: config.grading.capacityMps,
      aggregationTopicBytes: config.loadReport.aggregationTopicBytes,
      store: dependencies.store,
      run,
      sequence: (previous?.sequence ?? 0) + 1,
      previousSha256: previous?.jwsSha256 ?? null,
      previousAggregation,
      now,
    });
    const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: LOAD_REPORT_JWS_TYPE })
      .sign(key.privateKey);
    const [inserted] = await tx
      .insert(loadReports)
      .values({
        sequence: payload.sequence,
        gradingRunId: run?.id ?? null,
        jws,
        jwsSha256: sha256Hex(jws),
        previousSha256: payload.previousSha256,
      })
      .returning();
    if (!inserted) throw new Error(`Load report ${payload.sequence} was not stored`);
    return inserted;
  });
  logger.info("Issued load report {sequence} from grading run {runId}", {
    sequence: row.sequence,
    runId: row.gradingRunId,
  });
  return row;
}

/**
 * Issues a report when the latest completed grading run has none yet, so each graded hour,
 * scheduled or on demand, gets one report. Returns the new row, or undefined when none was due.
 */
export async function issueLoadReportIfDue(
  dependencies: IssueDependencies,
  now: Date = new Date(),
): Promise<LoadReportRow | undefined> {
  const run = await latestCompletedRun(dependencies.db);
  if (!run) return undefined;
  const latest = await latestLoadReport(dependencies.db);
  if (latest?.gradingRunId === run.id) return undefined;
  return await issueLoadReport(dependencies, now);
}

/** Returns the newest report, or undefined before the first. */
export async function latestLoadReport(db: Database): Promise<LoadReportRow | undefined> {
  const [row] = await db.select().from(loadReports).orderBy(desc(loadReports.sequence)).limit(1);
  return row;
}

/** Up to `limit` reports with a sequence above `after`, oldest first. */
export async function loadReportsAfter(
  db: Database,
  after: number,
  limit: number,
): Promise<LoadReportRow[]> {
  return await db
    .select()
    .from(loadReports)
    .where(gt(loadReports.sequence, after))
    .orderBy(asc(loadReports.sequence))
    .limit(limit);
}
