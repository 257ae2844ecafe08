/**
 * Metering routes: the node's dynamic state, load figures (MPS per topic, UnitNode, Unit, Repo
 * and origin domain over `[month, week, day, hour]`), the hot list, error frequencies and
 * channel totals. All need the admin token.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  LOAD_HORIZONS,
  type LoadFigure,
  type LoadReport,
  type TimeSeriesStore,
} from "../../timeseries/store.ts";
import { adminRoute, errorResponses, jsonResponse } from "./routing.ts";

const LOAD_SUBJECTS = ["topic", "unitNode", "unit", "repo", "domain"] as const;
const MAX_LIST = 500;
const MAX_HISTORY_HOURS = 24 * 31;

const PerHorizonSchema = z
  .object({ month: z.number(), week: z.number(), day: z.number(), hour: z.number() })
  .openapi("PerHorizon");

const LoadFigureSchema = z
  .object({
    key: z.string(),
    mps: PerHorizonSchema,
    messages: PerHorizonSchema,
    bytes: PerHorizonSchema,
    activeUnits: PerHorizonSchema.optional(),
  })
  .openapi("LoadFigure");

const LoadReportSchema = z
  .object({
    subject: z.enum(LOAD_SUBJECTS),
    windowEnd: z.string(),
    windowSeconds: PerHorizonSchema,
    items: z.array(LoadFigureSchema),
  })
  .openapi("LoadReport");

const NodeStateSchema = z
  .object({ at: z.string(), values: z.record(z.string(), z.number()) })
  .openapi("NodeState");

function perHorizon(values: readonly number[]) {
  const [month = 0, week = 0, day = 0, hour = 0] = values;
  return { month, week, day, hour };
}

function figureJson(figure: LoadFigure) {
  return {
    key: figure.key,
    mps: perHorizon(figure.mps),
    messages: perHorizon(figure.messages),
    bytes: perHorizon(figure.bytes),
    ...(figure.activeUnits ? { activeUnits: perHorizon(figure.activeUnits) } : {}),
  };
}

/** Keeps the figures of `keys` (all when absent), busiest first by the hourly MPS, cut to `limit`. */
function reportJson(report: LoadReport, keys: string[] | undefined, limit: number) {
  const wanted = keys ? new Set(keys) : undefined;
  const items = report.figures
    .filter((figure) => !wanted || wanted.has(figure.key))
    .sort((a, b) => (b.mps[3] ?? 0) - (a.mps[3] ?? 0) || a.key.localeCompare(b.key))
    .slice(0, limit)
    .map(figureJson);
  return {
    subject: report.subject,
    windowEnd: report.windowEnd.toISOString(),
    windowSeconds: perHorizon(report.windowSeconds),
    items,
  };
}

function hoursAgo(hours: number, now: Date): Date {
  return new Date(now.getTime() - hours * 3_600_000);
}

export function registerMeteringRoutes(
  app: OpenAPIHono,
  store: TimeSeriesStore,
  admin: MiddlewareHandler,
): void {
  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/node/state",
      tags: ["Metering"],
      summary: "Latest node state, and its history when `hours` is given",
      request: {
        query: z.strictObject({
          hours: z.coerce
            .number()
            .int()
            .min(1)
            .max(MAX_HISTORY_HOURS)
            .optional()
            .openapi({
              description: `History length in hours, at most ${MAX_HISTORY_HOURS}`,
            }),
        }),
      },
      responses: {
        200: jsonResponse(
          z.object({ latest: NodeStateSchema.nullable(), history: z.array(NodeStateSchema) }),
          "The newest sample (null before the first one) and the requested history",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { hours } = c.req.valid("query");
      const now = new Date();
      const latest = await store.latestNodeState();
      const history = hours ? await store.nodeStateHistory(hoursAgo(hours, now), now) : [];
      const toJson = (sample: { at: Date; values: Record<string, number> }) => ({
        at: sample.at.toISOString(),
        values: sample.values,
      });
      return c.json({ latest: latest ? toJson(latest) : null, history: history.map(toJson) }, 200);
    },
  );

  // Registered before /load/{subject}, which would otherwise take `hot` as a subject.
  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/load/hot",
      tags: ["Metering"],
      summary: "Hottest topics or Units over the last minute or hour",
      request: {
        query: z.strictObject({
          subject: z.enum(["topic", "unit"]).default("topic"),
          window: z.enum(["minute", "hour"]).default("hour"),
          limit: z.coerce.number().int().min(1).max(MAX_LIST).default(20),
        }),
      },
      responses: {
        200: jsonResponse(
          z.object({
            items: z.array(z.object({ key: z.string(), messages: z.number(), mps: z.number() })),
          }),
          "Hot list, busiest first",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { subject, window, limit } = c.req.valid("query");
      const items = await store.hotList(subject, window, new Date(), limit);
      return c.json({ items }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/load/{subject}",
      tags: ["Metering"],
      summary: `Messages per second over ${LOAD_HORIZONS.join(", ")}, busiest first by the last hour`,
      request: {
        params: z.object({ subject: z.enum(LOAD_SUBJECTS) }),
        query: z.strictObject({
          key: z
            .union([z.string(), z.array(z.string())])
            .optional()
            .openapi({ description: "Keep only these keys (topic, UUID or domain); repeatable" }),
          limit: z.coerce.number().int().min(1).max(MAX_LIST).default(100),
        }),
      },
      responses: {
        200: jsonResponse(LoadReportSchema, "Load figures"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { subject } = c.req.valid("param");
      const { key, limit } = c.req.valid("query");
      const keys = key === undefined ? undefined : Array.isArray(key) ? key : [key];
      const report = await store.loadReport(subject, new Date());
      return c.json(reportJson(report, keys, limit), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/aggregation-space",
      tags: ["Metering"],
      summary: "Space that Pepeunit's DataPipe aggregations take, per UnitNode and per user",
      responses: {
        200: jsonResponse(
          z.object({
            at: z.string().nullable(),
            unitNodes: z.array(
              z.object({
                unitNodeId: z.string(),
                userId: z.string().nullable(),
                table: z.string(),
                rows: z.number(),
                bytes: z.number().openapi({ description: "Estimated bytes on disk" }),
              }),
            ),
            users: z.array(
              z.object({ userId: z.string().nullable(), rows: z.number(), bytes: z.number() }),
            ),
            missingTables: z.array(z.string()),
          }),
          "The newest measurement; empty lists and a null time before the first one",
        ),
        ...errorResponses(401, 403),
      },
    }),
    async (c) => {
      const snapshot = await store.latestAggregationSpace();
      if (!snapshot) return c.json({ at: null, unitNodes: [], users: [], missingTables: [] }, 200);
      return c.json(
        {
          at: snapshot.at.toISOString(),
          unitNodes: snapshot.unitNodes,
          users: snapshot.users,
          missingTables: snapshot.missingTables,
        },
        200,
      );
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/errors",
      tags: ["Metering"],
      summary: "Frequency of error and critical log records per fingerprint (kept 168 hours)",
      request: {
        query: z.strictObject({
          hours: z.coerce.number().int().min(1).max(168).default(24),
        }),
      },
      responses: {
        200: jsonResponse(
          z.object({
            items: z.array(
              z.object({
                source: z.string(),
                fingerprint: z.string(),
                level: z.string(),
                category: z.string(),
                sample: z.string(),
                count: z.number(),
                firstMinute: z.string(),
                lastMinute: z.string(),
              }),
            ),
          }),
          "Error frequencies, most frequent first",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { hours } = c.req.valid("query");
      const now = new Date();
      const rows = await store.errorFrequencies(hoursAgo(hours, now), now);
      const items = rows
        .sort((a, b) => b.count - a.count)
        .map((row) => ({
          ...row,
          firstMinute: row.firstMinute.toISOString(),
          lastMinute: row.lastMinute.toISOString(),
        }));
      return c.json({ items }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/channels",
      tags: ["Metering"],
      summary: "Messages and requests that reached the backend, per channel",
      request: {
        query: z.strictObject({
          hours: z.coerce.number().int().min(1).max(MAX_HISTORY_HOURS).default(24),
        }),
      },
      responses: {
        200: jsonResponse(
          z.object({ items: z.array(z.object({ channel: z.string(), count: z.number() })) }),
          "Totals per channel",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { hours } = c.req.valid("query");
      const now = new Date();
      return c.json({ items: await store.channelTotals(hoursAgo(hours, now), now) }, 200);
    },
  );
}
