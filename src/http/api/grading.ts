/**
 * Admin routes of grading: run it on demand, read the latest run, and read one Unit's grade.
 * The instance status is public in NodeInfo. These routes add the per-sample figures and the
 * Unit ids, which are for the administrator only.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import {
  GRADES,
  GRADING_RUN_STATUSES,
  GRADING_TRIGGERS,
  type GradingRunRow,
  type UnitGradeRow,
  units,
} from "../../db/schema/index.ts";
import { GradingInputError, lastCompleteHour } from "../../grading/measure.ts";
import {
  latestCompletedRun,
  runGrading,
  unitGradeAt,
  unitGradeHistory,
} from "../../grading/run.ts";
import type { NodeServices } from "../../services.ts";
import { HttpError } from "../errors.ts";
import { invalidFieldError } from "./fields.ts";
import { adminRoute, errorResponses, jsonResponse } from "./routing.ts";
import { IdParamsSchema } from "./schemas.ts";

const MAX_HISTORY = 24 * 7;

const TimestampSchema = z.string().openapi({ format: "date-time" });

const GradingRunSchema = z
  .object({
    id: z.string(),
    hour: TimestampSchema.openapi({ description: "Start of the graded UTC hour" }),
    trigger: z.enum(GRADING_TRIGGERS),
    status: z.enum(GRADING_RUN_STATUSES),
    instanceStatus: z.enum(GRADES).nullable(),
    parameters: z.record(z.string(), z.unknown()).openapi({
      description: "Capacity, thresholds and percentiles the run used",
    }),
    figures: z.record(z.string(), z.unknown()).nullable().openapi({
      description:
        "The twelve five-minute samples with their levels, the instance MPS, Unit counts per colour and the hot Units",
    }),
    error: z.string().nullable(),
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema.nullable(),
  })
  .openapi("GradingRun");

const GradingRunRequestSchema = z
  .strictObject({
    hour: z.iso
      .datetime({ offset: true, error: "expected an ISO 8601 time such as 2027-01-01T10:00:00Z" })
      .optional()
      .openapi({
        description: "Start of the UTC hour to grade; the last complete hour when omitted",
        example: "2027-01-01T10:00:00Z",
      }),
  })
  .openapi("GradingRunRequest");

const UnitGradeSchema = z
  .object({
    unitId: z.string(),
    hour: TimestampSchema,
    colour: z.enum(GRADES),
    idle: z.boolean().openapi({
      description: "True when the Unit sent no message in the hour; it is then green",
    }),
    percentile: z.number(),
    meanMps: z.number(),
    peakMps: z.number(),
    messages: z.number().int(),
    bytes: z.number().int(),
    activeSamples: z.number().int(),
    hot: z.boolean(),
  })
  .openapi("UnitGrade");

const UnitGradeQuerySchema = z.object({
  history: z.coerce
    .number({ error: `expected a whole number from 1 to ${MAX_HISTORY}` })
    .int(`expected a whole number from 1 to ${MAX_HISTORY}`)
    .min(1, `expected a whole number from 1 to ${MAX_HISTORY}`)
    .max(MAX_HISTORY, `expected a whole number from 1 to ${MAX_HISTORY}`)
    .optional()
    .openapi({
      type: "integer",
      description: `Also list the grades of this many latest active hours, at most ${MAX_HISTORY}`,
    }),
});

function runJson(run: GradingRunRow) {
  return {
    id: run.id,
    hour: run.hour.toISOString(),
    trigger: run.trigger,
    status: run.status,
    instanceStatus: run.instanceStatus,
    parameters: run.parameters,
    figures: run.figures,
    error: run.error,
    startedAt: run.startedAt.toISOString(),
    finishedAt: run.finishedAt?.toISOString() ?? null,
  };
}

function gradeJson(grade: UnitGradeRow) {
  return {
    unitId: grade.unitId,
    hour: grade.hour.toISOString(),
    colour: grade.colour,
    idle: false,
    percentile: grade.percentile,
    meanMps: grade.meanMps,
    peakMps: grade.peakMps,
    messages: grade.messages,
    bytes: grade.bytes,
    activeSamples: grade.activeSamples,
    hot: grade.hot,
  };
}

function idleGradeJson(unitId: string, hour: Date) {
  return {
    unitId,
    hour: hour.toISOString(),
    colour: "green" as const,
    idle: true,
    percentile: 0,
    meanMps: 0,
    peakMps: 0,
    messages: 0,
    bytes: 0,
    activeSamples: 0,
    hot: false,
  };
}

export function registerGradingRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
  /** Clock of on-demand runs; tests pass a fixed one. */
  clock: () => Date = () => new Date(),
): void {
  const { db } = services;

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/grading/run",
      tags: ["Grading"],
      summary: "Grade an hour now",
      description:
        "Grades the last complete UTC hour, or `hour`, from its twelve five-minute samples. A " +
        "rerun of an hour replaces that hour's Unit grades; every run keeps its own record.",
      request: {
        body: {
          required: false,
          content: { "application/json": { schema: GradingRunRequestSchema } },
        },
      },
      responses: {
        200: jsonResponse(GradingRunSchema, "The completed run"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = c.req.valid("json") as { hour?: string } | undefined;
      const now = clock();
      const hour = body?.hour === undefined ? lastCompleteHour(now) : new Date(body.hour);
      try {
        const run = await runGrading(
          { db, store: services.timeSeries, settings: services.config.grading },
          { hour, trigger: "manual", now },
        );
        return c.json(runJson(run), 200);
      } catch (error) {
        if (!(error instanceof GradingInputError)) throw error;
        throw invalidFieldError("body", "hour", error.message);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/grading/latest",
      tags: ["Grading"],
      summary: "Read the completed run of the latest graded hour",
      responses: {
        200: jsonResponse(GradingRunSchema, "The run"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const run = await latestCompletedRun(db);
      if (!run) {
        throw new HttpError(
          404,
          "grading_run_not_found",
          "No hour has been graded yet; the worker grades each hour two minutes after it ends, or POST /api/v1/grading/run grades one now",
        );
      }
      return c.json(runJson(run), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/units/{id}/grade",
      tags: ["Grading"],
      summary: "Read a Unit's colour in the latest graded hour",
      request: { params: IdParamsSchema, query: UnitGradeQuerySchema },
      responses: {
        200: jsonResponse(
          z.object({ latest: UnitGradeSchema, history: z.array(UnitGradeSchema) }),
          "The Unit's grade in the latest graded hour, and its recent active hours when asked",
        ),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { history } = c.req.valid("query");
      const run = await latestCompletedRun(db);
      const [unit] = await db.select({ id: units.id }).from(units).where(eq(units.id, id));
      const grade = run ? await unitGradeAt(db, id, run.hour) : undefined;
      if (!grade && !unit) {
        throw new HttpError(404, "unit_not_found", `Unit ${id} not found and never graded`);
      }
      if (!run) {
        throw new HttpError(
          404,
          "grading_run_not_found",
          "No hour has been graded yet; POST /api/v1/grading/run grades one now",
        );
      }
      const rows = history === undefined ? [] : await unitGradeHistory(db, id, history);
      return c.json(
        {
          latest: grade ? gradeJson(grade) : idleGradeJson(id, run.hour),
          history: rows.map(gradeJson),
        },
        200,
      );
    },
  );
}
