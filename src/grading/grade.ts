/**
 * The grading rules, free of I/O. An hour is measured as twelve five-minute samples. Each sample
 * gets a level from the higher of two pressures: the instance's MPS against its capacity, and the
 * busiest resource (CPU, memory, disk) of the node state minutes in it. The instance status needs
 * `minSamples` samples at a level, so one short spike does not change it. Units are coloured by
 * the percentile of their load among the hour's active Units. docs/grading.md states the rules
 * with examples.
 */
import type { GradingConfig } from "../config.ts";
import type { Grade } from "../db/schema/index.ts";
import type { NodeStateSample } from "../timeseries/types.ts";

export const SAMPLE_SECONDS = 300;
export const SAMPLES_PER_HOUR = 12;

/** Resource figures of one node state minute, each in percent used, or null when missing. */
export interface ResourceUse {
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
}

/** Measurements of one five-minute sample of the instance. */
export interface InstanceSampleInput {
  from: Date;
  /** Messages on all topics in the five minutes. */
  messages: number;
  bytes: number;
  /** Node state minutes that fall into the five minutes. */
  nodeStates: NodeStateSample[];
}

export interface InstanceSample {
  from: Date;
  messages: number;
  bytes: number;
  mps: number;
  /** 100 · mps / capacity. */
  loadPercent: number;
  /** The highest figure of the sample's node state minutes, or null without any. */
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
  /** Node state minutes the sample had. */
  nodeStateMinutes: number;
  /** The highest of load, CPU, memory and disk percent. */
  pressurePercent: number;
  level: Grade;
}

export interface InstanceGrade {
  status: Grade;
  samples: InstanceSample[];
  /** Samples at yellow or red, and samples at red. */
  yellowSamples: number;
  redSamples: number;
  meanMps: number;
  peakMps: number;
  messages: number;
  bytes: number;
}

/** Messages and bytes of one Unit in each five-minute sample of the hour. */
export interface UnitLoad {
  unitId: string;
  messages: number[];
  bytes: number[];
}

export interface UnitGrade {
  unitId: string;
  colour: Grade;
  percentile: number;
  meanMps: number;
  peakMps: number;
  messages: number;
  bytes: number;
  activeSamples: number;
  hot: boolean;
}

function percentUsed(used: number, total: number): number | null {
  if (!(total > 0) || !Number.isFinite(used)) return null;
  return (100 * used) / total;
}

/** Reads CPU, memory and disk use from the names the node state collector writes. */
export function resourceUse(values: Record<string, number>): ResourceUse {
  const cpu = values.host_cpu_percent;
  const memoryTotal = values.host_memory_total_bytes;
  const memoryAvailable = values.host_memory_available_bytes;
  const diskTotal = values.disk_total_bytes;
  const diskFree = values.disk_free_bytes;
  return {
    cpuPercent: cpu === undefined || !Number.isFinite(cpu) ? null : cpu,
    memoryPercent:
      memoryTotal === undefined || memoryAvailable === undefined
        ? null
        : percentUsed(memoryTotal - memoryAvailable, memoryTotal),
    diskPercent:
      diskTotal === undefined || diskFree === undefined
        ? null
        : percentUsed(diskTotal - diskFree, diskTotal),
  };
}

function maxOrNull(values: (number | null)[]): number | null {
  let highest: number | null = null;
  for (const value of values) {
    if (value !== null && (highest === null || value > highest)) highest = value;
  }
  return highest;
}

function levelOf(percent: number, settings: GradingConfig): Grade {
  if (percent >= settings.redPercent) return "red";
  if (percent >= settings.yellowPercent) return "yellow";
  return "green";
}

export function gradeSample(input: InstanceSampleInput, settings: GradingConfig): InstanceSample {
  const mps = input.messages / SAMPLE_SECONDS;
  const loadPercent = (100 * mps) / settings.capacityMps;
  const uses = input.nodeStates.map((state) => resourceUse(state.values));
  const cpuPercent = maxOrNull(uses.map((use) => use.cpuPercent));
  const memoryPercent = maxOrNull(uses.map((use) => use.memoryPercent));
  const diskPercent = maxOrNull(uses.map((use) => use.diskPercent));
  const pressurePercent = maxOrNull([loadPercent, cpuPercent, memoryPercent, diskPercent]) ?? 0;
  return {
    from: input.from,
    messages: input.messages,
    bytes: input.bytes,
    mps,
    loadPercent,
    cpuPercent,
    memoryPercent,
    diskPercent,
    nodeStateMinutes: input.nodeStates.length,
    pressurePercent,
    level: levelOf(pressurePercent, settings),
  };
}

/**
 * Grades the instance from the samples of one hour: red when at least `minSamples` samples are
 * red, yellow when at least `minSamples` are yellow or red, green otherwise.
 */
export function gradeInstance(
  inputs: InstanceSampleInput[],
  settings: GradingConfig,
): InstanceGrade {
  const samples = inputs.map((input) => gradeSample(input, settings));
  const redSamples = samples.filter((sample) => sample.level === "red").length;
  const yellowSamples = samples.filter((sample) => sample.level !== "green").length;
  let status: Grade = "green";
  if (redSamples >= settings.minSamples) status = "red";
  else if (yellowSamples >= settings.minSamples) status = "yellow";

  const messages = samples.reduce((sum, sample) => sum + sample.messages, 0);
  const bytes = samples.reduce((sum, sample) => sum + sample.bytes, 0);
  const seconds = samples.length * SAMPLE_SECONDS;
  return {
    status,
    samples,
    yellowSamples,
    redSamples,
    meanMps: seconds > 0 ? messages / seconds : 0,
    peakMps: samples.reduce((peak, sample) => Math.max(peak, sample.mps), 0),
    messages,
    bytes,
  };
}

function colourOf(percentile: number, settings: GradingConfig): Grade {
  if (percentile >= settings.unitRedPercentile) return "red";
  if (percentile >= settings.unitYellowPercentile) return "yellow";
  return "green";
}

/** Returns how many entries of the ascending `sorted` are below `value`. */
function countBelow(sorted: number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] ?? 0) < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Colours the Units with at least one message in the hour. A Unit's percentile is the share of
 * these Units whose load is strictly lower, so Units with equal loads get equal colours. Load is
 * the message count of the hour, which ranks exactly like the mean MPS without rounding.
 */
export function gradeUnits(loads: UnitLoad[], settings: GradingConfig): UnitGrade[] {
  const active = loads
    .map((load) => ({
      load,
      messages: load.messages.reduce((sum, count) => sum + count, 0),
    }))
    .filter((entry) => entry.messages > 0);
  const sorted = active.map((entry) => entry.messages).sort((a, b) => a - b);
  const hot = new Set(
    [...active]
      .sort((a, b) => b.messages - a.messages || (a.load.unitId < b.load.unitId ? -1 : 1))
      .slice(0, settings.hotUnits)
      .map((entry) => entry.load.unitId),
  );

  return active.map(({ load, messages }) => {
    const percentile = (100 * countBelow(sorted, messages)) / sorted.length;
    return {
      unitId: load.unitId,
      colour: colourOf(percentile, settings),
      percentile,
      meanMps: messages / (SAMPLES_PER_HOUR * SAMPLE_SECONDS),
      peakMps: load.messages.reduce((peak, count) => Math.max(peak, count / SAMPLE_SECONDS), 0),
      messages,
      bytes: load.bytes.reduce((sum, count) => sum + count, 0),
      activeSamples: load.messages.filter((count) => count > 0).length,
      hot: hot.has(load.unitId),
    };
  });
}
