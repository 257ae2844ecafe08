/** Latency statistics and option parsing shared by the benchmarks. */
/** Returns the q-quantile (0..1) of ascending `sorted` by the nearest-rank method. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Summarizes latencies in milliseconds. */
export function summarize(latenciesMs: readonly number[]): LatencySummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** Formats milliseconds for tables: whole numbers from 100 ms up, two decimals below. */
export function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(2);
}

/** Formats the minimum and maximum of several runs as `min–max`. */
export function spread(values: readonly number[], format: (value: number) => string): string {
  if (values.length === 0) return "-";
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low === high ? format(low) : `${format(low)}–${format(high)}`;
}

/** Parses a comma-separated list of positive integers such as `1,8,32`. */
export function parseIntegerList(option: string, text: string): number[] {
  const values = text.split(",").map((part) => Number(part.trim()));
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value < 1)) {
    throw new Error(
      `--${option}: expected positive whole numbers separated by commas, got "${text}"`,
    );
  }
  return values;
}

/** Parses a positive integer option. */
export function parsePositiveInteger(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`--${option}: expected a positive whole number, got "${text}"`);
  }
  return value;
}
