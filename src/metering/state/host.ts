/**
 * Host and process probes: CPU, memory, network bandwidth and uptime. CPU and bandwidth are
 * rates, computed from the difference between two readings, so these probes keep the previous
 * reading and return nothing for a value until they have one.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";

/** Joins a metric name and a label value, e.g. `host_network_receive_bytes_per_second:eth0`. */
export function labelledName(name: string, label: string): string {
  return `${name}:${label}`;
}

interface CpuTimes {
  busy: number;
  total: number;
}

function hostCpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const { user, nice, sys, idle, irq } = cpu.times;
    const all = user + nice + sys + idle + irq;
    total += all;
    busy += all - idle;
  }
  return { busy, total };
}

/**
 * Returns CPU use since the previous call: `host_cpu_percent` (busy share of all cores, 0–100)
 * and `process_cpu_percent` (this process's user + system time as a share of all cores, 0–100).
 */
export function createCpuProbe(now: () => number = () => performance.now()) {
  let previousHost = hostCpuTimes();
  let previousProcess = process.cpuUsage();
  let previousAt = now();

  return async (): Promise<Record<string, number>> => {
    const host = hostCpuTimes();
    const processUsage = process.cpuUsage();
    const at = now();
    const values: Record<string, number> = {};

    const hostTotal = host.total - previousHost.total;
    if (hostTotal > 0) {
      values.host_cpu_percent = clampPercent(((host.busy - previousHost.busy) / hostTotal) * 100);
    }
    const elapsedMicros = (at - previousAt) * 1000;
    const cores = Math.max(os.availableParallelism(), 1);
    if (elapsedMicros > 0) {
      const usedMicros =
        processUsage.user - previousProcess.user + (processUsage.system - previousProcess.system);
      values.process_cpu_percent = clampPercent((usedMicros / (elapsedMicros * cores)) * 100);
    }

    previousHost = host;
    previousProcess = processUsage;
    previousAt = at;
    return values;
  };
}

function clampPercent(value: number): number {
  return Math.min(100, Math.max(0, value));
}

/** Parses `/proc/meminfo` into byte counts by field name (`MemTotal`, `MemAvailable`, ...). */
export function parseMeminfo(text: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const value = Number(match[2]);
    fields.set(match[1], line.trimEnd().endsWith("kB") ? value * 1024 : value);
  }
  return fields;
}

/**
 * Returns host memory in bytes (`host_memory_total_bytes`, `..._available_bytes`,
 * `..._used_bytes` = total − available) and the process's `process_memory_rss_bytes`.
 * Available memory is `MemAvailable` from `/proc/meminfo` where the kernel reports it, because
 * `MemFree` leaves out reclaimable page cache; elsewhere it is `os.freemem()`.
 */
export async function readMemory(meminfoPath = "/proc/meminfo"): Promise<Record<string, number>> {
  let total = os.totalmem();
  let available = os.freemem();
  try {
    const fields = parseMeminfo(await readFile(meminfoPath, "utf8"));
    const memTotal = fields.get("MemTotal");
    const memAvailable = fields.get("MemAvailable");
    if (memTotal !== undefined && memAvailable !== undefined) {
      total = memTotal;
      available = memAvailable;
    }
  } catch {
    // No procfs (not Linux): the os module's figures are the best reading there is.
  }
  return {
    host_memory_total_bytes: total,
    host_memory_available_bytes: available,
    host_memory_used_bytes: Math.max(0, total - available),
    process_memory_rss_bytes: process.memoryUsage.rss(),
  };
}

export interface InterfaceCounters {
  receiveBytes: number;
  transmitBytes: number;
}

/**
 * Parses `/proc/net/dev`: after two header lines, one line per interface,
 * `name: rx_bytes rx_packets ... (8 receive fields) tx_bytes ...`.
 */
export function parseNetDev(text: string): Map<string, InterfaceCounters> {
  const interfaces = new Map<string, InterfaceCounters>();
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim();
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    const receiveBytes = fields[0];
    const transmitBytes = fields[8];
    if (name === "" || receiveBytes === undefined || transmitBytes === undefined) continue;
    if (!Number.isFinite(receiveBytes) || !Number.isFinite(transmitBytes)) continue;
    interfaces.set(name, { receiveBytes, transmitBytes });
  }
  return interfaces;
}

/**
 * Returns bytes per second received and sent on each interface since the previous call, as
 * `host_network_{receive,transmit}_bytes_per_second:<interface>`, and their sums over every
 * interface except loopback `lo` without the suffix. An interface whose counters went down
 * (recreated, or wrapped) or that is new since the previous call has no value this time.
 */
export function createNetworkProbe(
  netDevPath = "/proc/net/dev",
  now: () => number = () => performance.now(),
) {
  let previous: Map<string, InterfaceCounters> | undefined;
  let previousAt = 0;

  return async (): Promise<Record<string, number>> => {
    const current = parseNetDev(await readFile(netDevPath, "utf8"));
    const at = now();
    const values: Record<string, number> = {};
    const seconds = (at - previousAt) / 1000;

    if (previous !== undefined && seconds > 0) {
      let receiveTotal = 0;
      let transmitTotal = 0;
      for (const [name, counters] of current) {
        const before = previous.get(name);
        if (before === undefined) continue;
        const received = counters.receiveBytes - before.receiveBytes;
        const transmitted = counters.transmitBytes - before.transmitBytes;
        if (received < 0 || transmitted < 0) continue;
        values[labelledName("host_network_receive_bytes_per_second", name)] = received / seconds;
        values[labelledName("host_network_transmit_bytes_per_second", name)] =
          transmitted / seconds;
        if (name !== "lo") {
          receiveTotal += received / seconds;
          transmitTotal += transmitted / seconds;
        }
      }
      values.host_network_receive_bytes_per_second = receiveTotal;
      values.host_network_transmit_bytes_per_second = transmitTotal;
    }

    previous = current;
    previousAt = at;
    return values;
  };
}

/** Returns `process_uptime_seconds` and `host_uptime_seconds`. */
export function readUptime(): Record<string, number> {
  return { process_uptime_seconds: process.uptime(), host_uptime_seconds: os.uptime() };
}
