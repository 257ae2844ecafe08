/**
 * Logging setup. Every logger of the node lives under the category `pepeunit-node`; the second
 * level is one of {@link LOG_MODULES}, so log routing and level settings stay predictable.
 * Fedify logs under its own `fedify` category and is configured here too.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { inspect } from "node:util";
import {
  configure,
  dispose,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  reset,
  type Sink,
  withFilter,
} from "@logtape/logtape";
import type { LogLevel } from "./config.ts";

export const ROOT_CATEGORY = "pepeunit-node";

/** Second-level categories; a test checks that every `getNodeLogger` call uses one of them. */
export const LOG_MODULES = [
  "db",
  "http",
  "federation",
  "catalogue",
  "import",
  "cli",
  "server",
  "queue",
  "metering",
  "timeseries",
  "policy",
  "bridges",
  "money",
  "grading",
  "reports",
  "telegram",
] as const;
export type LogModule = (typeof LOG_MODULES)[number];

/** Returns the logger `["pepeunit-node", module, ...parts]`. */
export function getNodeLogger(module: LogModule, ...parts: string[]): Logger {
  return getLogger([ROOT_CATEGORY, module, ...parts]);
}

export interface LoggingOptions {
  level: LogLevel;
  format: "text" | "json";
  /** Receives every error and fatal record of the node and of Fedify, for error tracking. */
  errorSink?: Sink;
}

/**
 * Renders one property of a text log line. Strings print bare, so URLs and ids can be copied
 * from the log as they are. Errors print their stack and cause instead of every field.
 */
export function formatTextValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) {
    const cause = value.cause instanceof Error ? `\n  caused by: ${value.cause.message}` : "";
    return `${value.stack ?? `${value.name}: ${value.message}`}${cause}`;
  }
  return inspect(value, { depth: 4, breakLength: Number.POSITIVE_INFINITY });
}

/**
 * Configures LogTape for the whole process: one console sink (text or JSON lines), request
 * context through AsyncLocalStorage so Fedify's own records carry the request id too.
 */
export async function setUpLogging(options: LoggingOptions): Promise<void> {
  const formatter =
    options.format === "json"
      ? getJsonLinesFormatter()
      : getTextFormatter({
          timestamp: "date-time",
          value: formatTextValue,
        });
  await configure({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: {
      console: getConsoleSink({ formatter }),
      errors: withFilter(options.errorSink ?? (() => {}), "error"),
    },
    loggers: [
      { category: [ROOT_CATEGORY], sinks: ["console", "errors"], lowestLevel: options.level },
      // Fedify is chatty at debug; keep it one step quieter than the node unless tracing.
      {
        category: ["fedify"],
        sinks: ["console", "errors"],
        lowestLevel: options.level === "trace" || options.level === "debug" ? "debug" : "warning",
      },
      { category: ["logtape", "meta"], sinks: ["console"], lowestLevel: "warning" },
    ],
  });
}

/** Flushes and removes all sinks; call last during shutdown. */
export async function tearDownLogging(): Promise<void> {
  await dispose();
  await reset();
}
