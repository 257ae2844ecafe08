/**
 * Reading EMQX's Prometheus exposition (`GET /api/v5/prometheus/stats`) into named numbers.
 * Parsing is done by `parse-prometheus-text-format`.
 */
import parsePrometheusTextFormat from "parse-prometheus-text-format";

/** One series of the exposition. Summaries and histograms appear as their `_sum` and `_count`. */
export interface PrometheusSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** The family's type in lower case: `counter`, `gauge`, `summary`, `histogram` or `untyped`. */
  type: string;
}

/** A parsed exposition. */
export interface PrometheusStats {
  samples: PrometheusSample[];
  /**
   * Value of each series by its key: the bare name for a series without labels
   * (`emqx_messages_received`), otherwise the name with its labels sorted by label name
   * (`emqx_vm_cpu_use{node="emqx@127.0.0.1"}`).
   */
  values: Record<string, number>;
}

/** Returns the Prometheus key of a series, with its labels sorted by label name. */
export function seriesKey(name: string, labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return name;
  const parts = names.map((label) => `${label}=${JSON.stringify(labels[label])}`);
  return `${name}{${parts.join(",")}}`;
}

/**
 * Parses Prometheus text into samples. Throws an `Error` naming the bad line when the text is
 * not Prometheus exposition, or when a value is not a number (`NaN`, `+Inf` and `-Inf` are
 * numbers here).
 */
export function parsePrometheusStats(text: string): PrometheusStats {
  const samples: PrometheusSample[] = [];
  for (const family of parsePrometheusTextFormat(withoutEmptyHelp(text))) {
    const type = family.type.toLowerCase();
    for (const sample of family.metrics) {
      const labels = sample.labels ?? {};
      if (sample.value !== undefined) {
        samples.push({ name: family.name, labels, value: toNumber(sample.value), type });
      }
      if (sample.sum !== undefined) {
        samples.push({ name: `${family.name}_sum`, labels, value: toNumber(sample.sum), type });
      }
      if (sample.count !== undefined) {
        samples.push({
          name: `${family.name}_count`,
          labels,
          value: toNumber(sample.count),
          type,
        });
      }
    }
  }
  const values: Record<string, number> = {};
  for (const sample of samples) values[seriesKey(sample.name, sample.labels)] = sample.value;
  return { samples, values };
}

/** Sums every series of `name` across its labels, or returns undefined when there is none. */
export function sumSeries(stats: PrometheusStats, name: string): number | undefined {
  let total: number | undefined;
  for (const sample of stats.samples) {
    if (sample.name === name) total = (total ?? 0) + sample.value;
  }
  return total;
}

/**
 * Drops `# HELP` lines without a docstring. EMQX 5.8 writes one for every series
 * (`# HELP emqx_messages_received ` with an empty help text), and parse-prometheus-text-format
 * 1.1.1 trims the line and then rejects it for the missing docstring.
 */
function withoutEmptyHelp(text: string): string {
  return text.replace(/^#[ \t]+HELP[ \t]+\S+[ \t]*$/gm, "");
}

function toNumber(text: string): number {
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  const value = Number(text);
  if (Number.isNaN(value) && text !== "NaN") {
    throw new Error(`Invalid Prometheus sample value ${JSON.stringify(text)}`);
  }
  return value;
}
