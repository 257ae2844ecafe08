/**
 * LogTape sink that counts the node's own `error` and `fatal` records (fatal is stored as
 * `critical`) by fingerprint per minute. The fingerprint covers the category and the message
 * template, e.g. `"Delivery to {inbox} failed"`, so records that differ only in their values count
 * as one kind of error.
 */
import type { LogRecord, Sink } from "@logtape/logtape";
import type { ErrorLevel } from "../../timeseries/types.ts";
import { type ErrorCounter, fingerprintOf } from "./counter.ts";

function templateOf(record: LogRecord): string {
  // A tagged-template call (logger.error`...${x}`) has the literal parts as a TemplateStringsArray.
  return typeof record.rawMessage === "string" ? record.rawMessage : record.rawMessage.join("{}");
}

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Renders the record's message with its values, as the console sink shows it. */
export function renderMessage(record: LogRecord): string {
  return record.message
    .map((part, index) => (index % 2 === 0 ? String(part) : renderValue(part)))
    .join("");
}

function levelOf(record: LogRecord): ErrorLevel | undefined {
  if (record.level === "fatal") return "critical";
  if (record.level === "error") return "error";
  return undefined;
}

/**
 * Returns a sink that adds every `error` and `fatal` record to `counter`. It never throws into the
 * logger: a record it cannot read is counted under a fixed fingerprint instead.
 */
export function getErrorCountingSink(counter: ErrorCounter): Sink {
  return (record: LogRecord) => {
    const level = levelOf(record);
    if (level === undefined) return;
    const category = record.category.join(".");
    try {
      counter.add({
        time: new Date(record.timestamp),
        source: "node",
        level,
        category,
        fingerprint: fingerprintOf("node", category, templateOf(record)),
        message: renderMessage(record),
      });
    } catch {
      try {
        counter.add({
          time: new Date(),
          source: "node",
          level,
          category,
          fingerprint: fingerprintOf("node", category, "(unreadable record)"),
          message: "(unreadable record)",
        });
      } catch {
        // Nothing is left to do without throwing into the logger.
      }
    }
  };
}
