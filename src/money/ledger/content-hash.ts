/**
 * Content hashes of postings. A replayed idempotency key is accepted only when the new request
 * hashes to the value stored with the first one.
 */
import { createHash } from "node:crypto";
import type { JsonValue, Posting } from "./validation.ts";

/** Serialises JSON with object keys sorted, so equal values always give the same text. */
export function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(",")}]`;
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Returns the SHA-256 of the canonical JSON of `value`, in hex. */
export function hashJson(value: JsonValue): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

/**
 * Hashes what a posting writes. Entries are sorted by account, so the order in which a caller
 * lists them does not matter, and amounts are decimal strings because JSON has no bigint.
 */
export function hashPosting(posting: Posting): string {
  return hashJson({
    kind: posting.kind,
    description: posting.description,
    metadata: posting.metadata,
    entries: posting.entries.map((entry) => [entry.accountId, entry.amount.toString()]),
  });
}
