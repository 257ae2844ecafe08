/**
 * `POST /ingest/errors`: the Pepeunit backend reports its `ERROR` and `CRITICAL` log records,
 * which are counted like the node's own (source `backend`). Only frequencies are kept.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { jsonBody, jsonResponse } from "../../http/api/routing.ts";
import { checkTimeWindow, ingestRoute } from "../channels/ingest-route.ts";
import { type ErrorCounter, fingerprintOf } from "./counter.ts";

export const MAX_RECORDS_PER_REQUEST = 1000;
/** Records older than the 168-hour retention of error counts would be deleted at once. */
export const MAX_RECORD_AGE_MS = 168 * 3600_000;
/** Allowed clock skew of the backend. */
export const MAX_RECORD_FUTURE_MS = 5 * 60_000;

const ErrorRecordSchema = z
  .object({
    time: z.iso.datetime({ offset: true }).openapi({ example: "2026-12-04T10:15:00Z" }),
    level: z
      .string()
      .transform((value) => value.toLowerCase())
      .pipe(z.enum(["error", "critical", "fatal"], { error: "expected error or critical" }))
      .openapi({ example: "ERROR", description: "error or critical (fatal is read as critical)" }),
    logger: z.string().min(1).max(200).openapi({ example: "app.services.unit_service" }),
    message: z.string().max(65_536).openapi({ example: "Unit 9d0c… not found" }),
    fingerprint: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .openapi({
        description:
          "Stable id of the kind of error, e.g. a hash of the unformatted message template. " +
          "Without it the node derives one from the logger and the message with numbers, " +
          "UUIDs, hex strings and quoted strings masked.",
      }),
  })
  .strict();

export const ErrorIngestSchema = z
  .object({
    records: z.array(ErrorRecordSchema).min(1).max(MAX_RECORDS_PER_REQUEST),
  })
  .strict()
  .openapi("ErrorIngest");

const ErrorIngestResultSchema = z
  .object({ counted: z.number().int() })
  .openapi("ErrorIngestResult");

/**
 * Masks the parts of an already formatted message that usually are values, so messages made
 * from one template share a fingerprint: UUIDs, hex strings of 8 or more digits, quoted strings
 * and numbers.
 */
export function messageTemplate(message: string): string {
  return message
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "{uuid}")
    .replace(/\b(?:0x)?[0-9a-f]{8,}\b/gi, "{hex}")
    .replace(/"[^"]*"|'[^']*'/g, "{string}")
    .replace(/\d+(?:\.\d+)?/g, "{number}");
}

/**
 * Registers `POST /ingest/errors` on an API app (mount point `/api/v1`). `now` is the clock that
 * decides whether a record's time is too old or too far ahead.
 */
export function registerErrorIngestRoute(
  app: OpenAPIHono,
  options: { ingestToken: string | undefined; counter: ErrorCounter; now?: () => number },
): void {
  const now = options.now ?? Date.now;
  const route = ingestRoute(options.ingestToken, {
    method: "post",
    path: "/ingest/errors",
    tags: ["Ingest"],
    summary: "Count error and critical log records of the Pepeunit backend",
    description:
      `At most ${MAX_RECORDS_PER_REQUEST} records per request; each \`time\` must lie within ` +
      "the last 168 hours and at most 5 minutes ahead of the node's clock.",
    request: { body: jsonBody(ErrorIngestSchema) },
    responses: {
      200: jsonResponse(ErrorIngestResultSchema, "How many records were counted"),
    },
  });

  app.openapi(route, async (c) => {
    const { records } = c.req.valid("json");
    const times = records.map((record) => new Date(record.time));
    checkTimeWindow(times, "records", now(), {
      maxAgeMs: MAX_RECORD_AGE_MS,
      tooOld: "older than 168 hours, the retention of error counts; leave the record out",
      maxFutureMs: MAX_RECORD_FUTURE_MS,
      tooFarAhead: "more than 5 minutes ahead of the node's clock; check the backend's clock",
    });

    records.forEach((record, index) => {
      const template =
        record.fingerprint === undefined
          ? messageTemplate(record.message)
          : `fingerprint ${record.fingerprint}`;
      options.counter.add({
        time: times[index] as Date,
        source: "backend",
        level: record.level === "error" ? "error" : "critical",
        category: record.logger,
        fingerprint: fingerprintOf("backend", record.logger, template),
        message: record.message,
      });
    });
    return c.json({ counted: records.length }, 200);
  });
}
