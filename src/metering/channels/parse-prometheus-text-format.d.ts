/** Types of `parse-prometheus-text-format` 1.1.1, which ships none. */
declare module "parse-prometheus-text-format" {
  export interface PrometheusSample {
    /** The sample value as written, e.g. `"1027"`, `"1.5e3"`, `"NaN"`, `"+Inf"`. */
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
  }

  export interface PrometheusFamily {
    name: string;
    help: string;
    /** Upper-case type from the `# TYPE` line, or `UNTYPED`. */
    type: string;
    metrics: PrometheusSample[];
  }

  /** Parses text exposition format 0.0.4; throws on a line it cannot read. */
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
