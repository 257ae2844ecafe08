/** `POST /ingest/usage`: usage events of the Pepeunit backend, stored once per `(source, id)`. */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { DatabaseLike } from "../../db/client.ts";
import { jsonBody, jsonResponse } from "../../http/api/routing.ts";
import { checkTimeWindow, ingestRoute } from "./ingest-route.ts";
import { storeUsageEvents } from "./usage-events.ts";

export const MAX_EVENTS_PER_REQUEST = 1000;
/** Oldest accepted event time: 35 days, long enough to resend a month after an outage. */
export const MAX_EVENT_AGE_MS = 35 * 24 * 3600_000;
/** Allowed clock skew of the sender. */
export const MAX_EVENT_FUTURE_MS = 5 * 60_000;
/** Largest accepted value; it keeps 15 significant digits exact in a JSON number. */
export const MAX_EVENT_VALUE = 1e15;

const text = (max: number, example: string) => z.string().min(1).max(max).openapi({ example });

const UsageEventSchema = z
  .object({
    id: text(256, "3f1c2b8e-1d7a-4c1e-9f3e-6d2a9b0c4e51"),
    source: text(256, "pepeunit-backend"),
    type: text(128, "unit.mqtt.messages"),
    subject: text(256, "9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10"),
    time: z.iso.datetime({ offset: true }).openapi({ example: "2026-12-04T10:15:00Z" }),
    value: z
      .number()
      .finite()
      .min(0)
      .max(MAX_EVENT_VALUE)
      .openapi({ example: 42, description: "Non-negative amount, at most 1e15" }),
  })
  .strict();

export const UsageIngestSchema = z
  .object({ events: z.array(UsageEventSchema).min(1).max(MAX_EVENTS_PER_REQUEST) })
  .strict()
  .openapi("UsageIngest");

const UsageIngestResultSchema = z
  .object({
    created: z.number().int().openapi({ description: "Events stored by this request" }),
    duplicates: z
      .number()
      .int()
      .openapi({ description: "Events whose (source, id) was already stored, or repeated" }),
  })
  .openapi("UsageIngestResult");

/** Registers `POST /ingest/usage` on an API app (mount point `/api/v1`). */
export function registerUsageIngestRoute(
  app: OpenAPIHono,
  options: { db: DatabaseLike; ingestToken: string | undefined; now?: () => number },
): void {
  const now = options.now ?? Date.now;
  const route = ingestRoute(options.ingestToken, {
    method: "post",
    path: "/ingest/usage",
    tags: ["Ingest"],
    summary: "Store usage events of the Pepeunit backend once each",
    description:
      `At most ${MAX_EVENTS_PER_REQUEST} events per request. An event's \`time\` must lie ` +
      "within the last 35 days and at most 5 minutes ahead of the node's clock. A repeated " +
      "`(source, id)` is counted as a duplicate and not stored again.",
    request: { body: jsonBody(UsageIngestSchema) },
    responses: {
      200: jsonResponse(UsageIngestResultSchema, "How many events were new and duplicates"),
    },
  });

  app.openapi(route, async (c) => {
    const { events } = c.req.valid("json");
    const parsed = events.map((event) => ({ ...event, time: new Date(event.time) }));
    checkTimeWindow(
      parsed.map((event) => event.time),
      "events",
      now(),
      {
        maxAgeMs: MAX_EVENT_AGE_MS,
        tooOld: "older than 35 days, the oldest usage the node accepts",
        maxFutureMs: MAX_EVENT_FUTURE_MS,
        tooFarAhead: "more than 5 minutes ahead of the node's clock; check the sender's clock",
      },
    );
    const outcome = await storeUsageEvents(options.db, parsed);
    return c.json(outcome, 200);
  });
}
