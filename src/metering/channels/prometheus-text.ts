/** Parsing of the Prometheus text exposition format, shared by the scrapers of metering. */
import parse, { type PrometheusFamily } from "parse-prometheus-text-format";

export type { PrometheusFamily };

/**
 * Parses Prometheus text exposition format 0.0.4 into metric families. Throws on a malformed
 * line, so a broken scrape is reported rather than read in part.
 */
export function parsePrometheusText(text: string): PrometheusFamily[] {
  // parse-prometheus-text-format 1.1.1 drops the last sample when the text does not end with a
  // newline, so one is always added (a blank line is harmless).
  return parse(`${text}\n`);
}
