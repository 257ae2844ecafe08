// Types for parse-prometheus-text-format 1.1.1, which ships none. They describe the output that
// its README and its `dist/parse-prometheus-text-format.cjs.js` produce.
declare module "parse-prometheus-text-format" {
  export interface ParsedSample {
    /** The sample value as written in the text, for example `"12"`, `"1.5e3"` or `"+Inf"`. */
    value?: string;
    labels?: Record<string, string>;
    /** `_count` of a summary or histogram. */
    count?: string;
    /** `_sum` of a summary or histogram. */
    sum?: string;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
  }

  export interface ParsedFamily {
    name: string;
    help: string;
    /** `COUNTER`, `GAUGE`, `SUMMARY`, `HISTOGRAM` or `UNTYPED`. */
    type: string;
    metrics: ParsedSample[];
  }

  /** Parses Prometheus text exposition; throws on a line it cannot read. */
  export default function parsePrometheusTextFormat(text: string): ParsedFamily[];
}
