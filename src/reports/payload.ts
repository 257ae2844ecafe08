/**
 * The content of a load report: the prices this instance charges by and the load it measured.
 * docs/load-report.md describes every field and the aggregation metric.
 */
import type { StoredBillingSettings } from "../billing/settings-store.ts";
import type { GradingRunRow } from "../db/schema/index.ts";
import type { GradingFigures } from "../grading/run.ts";
import type { AggregationSpaceSnapshot } from "../metering/state/aggregation-space.ts";
import type { PerHorizon, TimeSeriesStore } from "../timeseries/store.ts";
import { type PublishedPriceParameters, publishedPriceParameters } from "./price-parameters.ts";

/** Value of the payload's `type`, so a verifier never mistakes another JWS for a report. */
export const LOAD_REPORT_TYPE = "pepeunit-load-report";
/**
 * The version this node issues. Version 2 takes its `parameters` from the billing settings and
 * publishes the price curve; version 1 took them from the configuration.
 */
export const LOAD_REPORT_VERSION = 2;
/** Every version that the verifier accepts, so chains issued before an upgrade still verify. */
export const SUPPORTED_LOAD_REPORT_VERSIONS = [1, LOAD_REPORT_VERSION] as const;
/** The JWS `typ` header of a load report. */
export const LOAD_REPORT_JWS_TYPE = "pepeunit-load-report+jws";

export interface Horizons {
  month: number;
  week: number;
  day: number;
  hour: number;
}

export interface AggregationLoad {
  /** Time of the aggregation space snapshot the figures come from. */
  measuredAt: string;
  /** UnitNodes with at least one row in a DataPipe table. */
  topics: number;
  /** Sum over topics of max(1, ceil(bytes / aggregationTopicBytes)). */
  topicUnits: number;
  rows: number;
  bytes: number;
  /** Net rows added per day since the previous report's snapshot; null without one. */
  rowsPerDay: number | null;
  missingTables: string[];
}

/** The measured load, the same in versions 1 and 2. */
export interface LoadReportLoad {
  windowEnd: string;
  windowSeconds: Horizons;
  /** Messages per second on all topics over each window. */
  mps: Horizons;
  messages: Horizons;
  grading: {
    runId: string;
    hour: string;
    status: string;
    meanMps: number;
    peakMps: number;
    yellowSamples: number;
    redSamples: number;
    units: { active: number; green: number; yellow: number; red: number };
  } | null;
  aggregation: AggregationLoad | null;
}

interface LoadReportHeader {
  type: typeof LOAD_REPORT_TYPE;
  /** Origin of the issuing node; the signing key belongs to its instance actor. */
  iss: string;
  /** The Pepeunit domain whose load is reported. */
  domain: string;
  sequence: number;
  /** Hex SHA-256 of the previous report's compact JWS; null for sequence 1. */
  previousSha256: string | null;
  issuedAt: string;
}

/** The payload that this node issues: version 2, with the prices of the billing settings. */
export interface LoadReportPayload extends LoadReportHeader {
  version: typeof LOAD_REPORT_VERSION;
  parameters: PublishedPriceParameters;
  load: LoadReportLoad;
}

/**
 * The payload of version 1, which earlier releases issued. Its parameters came from the
 * configuration and can differ from what billing charged.
 */
export interface LoadReportPayloadV1 extends LoadReportHeader {
  version: 1;
  parameters: {
    currency: "token";
    capacityMps: number;
    freeMps: number;
    /** A linear price per MPS above `freeMps` and hour, which billing never used. */
    pricePerMps: number;
    freeAggregationTopics: number;
    pricePerAggregationTopic: number;
    aggregationTopicBytes: number;
  };
  load: LoadReportLoad;
}

/** A payload of any supported version, as stored reports may hold. */
export type AnyLoadReportPayload = LoadReportPayload | LoadReportPayloadV1;

function horizons(values: PerHorizon): Horizons {
  const [month, week, day, hour] = values;
  return { month, week, day, hour };
}

/**
 * Measures the aggregation metric from a snapshot. Rows per day come from the difference to the
 * previous report's figures, so they are net: rows that DataPipe's retention removed lower them.
 */
export function aggregationLoad(
  snapshot: AggregationSpaceSnapshot,
  topicBytes: number,
  previous: AggregationLoad | null,
): AggregationLoad {
  const perTopic = new Map<string, { rows: number; bytes: number }>();
  for (const entry of snapshot.unitNodes) {
    const total = perTopic.get(entry.unitNodeId) ?? { rows: 0, bytes: 0 };
    total.rows += entry.rows;
    total.bytes += entry.bytes;
    perTopic.set(entry.unitNodeId, total);
  }
  let topics = 0;
  let topicUnits = 0;
  let rows = 0;
  let bytes = 0;
  for (const total of perTopic.values()) {
    rows += total.rows;
    bytes += total.bytes;
    if (total.rows === 0) continue;
    topics += 1;
    topicUnits += Math.max(1, Math.ceil(total.bytes / topicBytes));
  }

  let rowsPerDay: number | null = null;
  if (previous !== null) {
    const elapsedDays = (snapshot.at.getTime() - Date.parse(previous.measuredAt)) / 86_400_000;
    // The same snapshot again adds no new measurement, so the previous rate is kept.
    rowsPerDay = elapsedDays > 0 ? (rows - previous.rows) / elapsedDays : previous.rowsPerDay;
  }
  return {
    measuredAt: snapshot.at.toISOString(),
    topics,
    topicUnits,
    rows,
    bytes,
    rowsPerDay,
    missingTables: [...snapshot.missingTables],
  };
}

export interface PayloadInput {
  origin: URL;
  domain: string;
  /** The billing settings in force when the report is issued. */
  billing: StoredBillingSettings;
  capacityMps: number;
  aggregationTopicBytes: number;
  store: TimeSeriesStore;
  run: GradingRunRow | undefined;
  sequence: number;
  previousSha256: string | null;
  /** The previous report's aggregation figures, for rows per day. */
  previousAggregation: AggregationLoad | null;
  now: Date;
}

export async function buildLoadReportPayload(input: PayloadInput): Promise<LoadReportPayload> {
  const [domains, snapshot] = await Promise.all([
    input.store.loadReport("domain", input.now),
    input.store.latestAggregationSpace(),
  ]);
  const mps: PerHorizon = [0, 0, 0, 0];
  const messages: PerHorizon = [0, 0, 0, 0];
  for (const figure of domains.figures) {
    for (let index = 0; index < 4; index++) {
      mps[index] = (mps[index] ?? 0) + (figure.mps[index] ?? 0);
      messages[index] = (messages[index] ?? 0) + (figure.messages[index] ?? 0);
    }
  }

  const figures = input.run?.figures as GradingFigures | null | undefined;
  const grading =
    input.run && figures && input.run.instanceStatus
      ? {
          runId: input.run.id,
          hour: input.run.hour.toISOString(),
          status: input.run.instanceStatus,
          meanMps: figures.instance.meanMps,
          peakMps: figures.instance.peakMps,
          yellowSamples: figures.instance.yellowSamples,
          redSamples: figures.instance.redSamples,
          units: figures.units,
        }
      : null;

  return {
    type: LOAD_REPORT_TYPE,
    version: LOAD_REPORT_VERSION,
    iss: input.origin.origin,
    domain: input.domain,
    sequence: input.sequence,
    previousSha256: input.previousSha256,
    issuedAt: input.now.toISOString(),
    parameters: publishedPriceParameters(input.billing, {
      capacityMps: input.capacityMps,
      aggregationTopicBytes: input.aggregationTopicBytes,
    }),
    load: {
      windowEnd: domains.windowEnd.toISOString(),
      windowSeconds: horizons(domains.windowSeconds),
      mps: horizons(mps),
      messages: horizons(messages),
      grading,
      aggregation:
        snapshot === null
          ? null
          : aggregationLoad(snapshot, input.aggregationTopicBytes, input.previousAggregation),
    },
  };
}
