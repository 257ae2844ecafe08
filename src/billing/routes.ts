/**
 * Admin routes of billing: the monetisation settings and their history, billing runs on demand
 * and the faucet. NodeInfo publishes the settings to everybody.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import {
  BILLING_RUN_KINDS,
  BILLING_RUN_STATUSES,
  BILLING_TRIGGERS,
  type BillingRunRow,
  type BillingSettingsHistoryRow,
  users,
} from "../db/schema/index.ts";
import { lastCompleteHour } from "../grading/measure.ts";
import { adminRoute, errorResponses, jsonBody, jsonResponse } from "../http/api/routing.ts";
import { HttpError } from "../http/errors.ts";
import {
  effectiveHalfCapacityPrice,
  grantFaucetTokens,
  InvalidBillingSettingsError,
  settingsJson,
} from "../money/billing/index.ts";
import { IdempotencyConflictError, InvalidLedgerRequestError } from "../money/ledger/index.ts";
import {
  type BillingDependencies,
  BillingInputError,
  runAggregationBilling,
  runUsageBilling,
} from "./run.ts";
import {
  listSettingsHistory,
  loadBillingSettings,
  type StoredBillingSettings,
  updateBillingSettings,
} from "./settings-store.ts";
import { resumeUnits } from "./stopping.ts";

const MAX_HISTORY = 500;
const TimestampSchema = z.string().openapi({ format: "date-time" });
const TokensSchema = z
  .string()
  .regex(/^[0-9]+$/)
  .openapi({ description: "Whole tokens as a decimal string", example: "1000" });
const TokensInputSchema = z
  .union([z.string(), z.number()])
  .openapi({ description: "Whole tokens, 0 or more, as a number or a decimal string" });

const SettingsSchema = z
  .object({
    enabled: z.boolean().openapi({ description: "Whether billing charges users" }),
    monthlyAllowance: TokensSchema.openapi({
      description: "Free tokens every user gets on the first day of each UTC month",
    }),
    region: z.string().openapi({ description: "The region whose price applies to this instance" }),
    regionPrices: z.record(z.string(), TokensSchema).openapi({
      description: "Price K of one hour at half capacity per region; `default` always exists",
    }),
    instancePrice: TokensSchema.nullable().openapi({
      description: "This instance's own price K; overrides the region price when set",
    }),
    freeMps: z.number().openapi({ description: "Mean MPS of one Unit in an hour that is free" }),
    unitYellowPercentile: z.number(),
    unitRedPercentile: z.number(),
    freeAggregationTopics: z.number().int(),
    pricePerAggregationTopic: TokensSchema.openapi({
      description: "Tokens per aggregation topic unit above the free ones per day",
    }),
    halfCapacityPrice: TokensSchema.openapi({ description: "The price K that applies now" }),
    updatedAt: TimestampSchema,
    updatedBy: z.string(),
  })
  .openapi("BillingSettings");

const SettingsChangeSchema = z
  .strictObject({
    enabled: z.boolean().optional(),
    monthlyAllowance: TokensInputSchema.optional(),
    region: z.string().optional(),
    regionPrices: z.record(z.string(), TokensInputSchema).optional(),
    instancePrice: TokensInputSchema.nullable().optional(),
    freeMps: z.number().optional(),
    unitYellowPercentile: z.number().optional(),
    unitRedPercentile: z.number().optional(),
    freeAggregationTopics: z.number().optional(),
    pricePerAggregationTopic: TokensInputSchema.optional(),
  })
  .openapi("BillingSettingsChange", {
    description: "The fields to change; omitted fields keep their value",
  });

const HistorySchema = z
  .object({
    id: z.number().int(),
    changedAt: TimestampSchema,
    changedBy: z.string(),
    changedFields: z.array(z.string()),
    previous: z.record(z.string(), z.unknown()).nullable(),
    current: z.record(z.string(), z.unknown()),
  })
  .openapi("BillingSettingsChangeRecord");

const RunSchema = z
  .object({
    id: z.string(),
    kind: z.enum(BILLING_RUN_KINDS),
    period: TimestampSchema.openapi({ description: "Start of the billed hour or day (UTC)" }),
    trigger: z.enum(BILLING_TRIGGERS),
    status: z.enum(BILLING_RUN_STATUSES),
    charged: z.number().int(),
    total: TokensSchema,
    failures: z.number().int(),
    details: z.record(z.string(), z.unknown()),
    error: z.string().nullable(),
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema.nullable(),
  })
  .openapi("BillingRun");

const RunRequestSchema = z
  .strictObject({
    kind: z.enum(BILLING_RUN_KINDS).optional().openapi({ description: "`usage` when omitted" }),
    hour: z.iso
      .datetime({ offset: true, error: "expected an ISO 8601 time such as 2027-01-01T10:00:00Z" })
      .optional()
      .openapi({
        description:
          "Start of the UTC hour (for `usage`) or day (for `aggregation`); the last complete hour or day when omitted",
      }),
  })
  .openapi("BillingRunRequest");

const FaucetRequestSchema = z
  .strictObject({
    key: z.string().min(1).max(100).openapi({
      description: "Idempotency key of this grant; a retry with it grants nothing twice",
    }),
    tokens: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    users: z.union([z.literal("all"), z.array(z.uuid()).min(1).max(10_000)]),
    reason: z.string().min(1).max(500),
  })
  .openapi("FaucetRequest");

const FaucetResponseSchema = z.object({
  granted: z.number().int(),
  tokens: TokensSchema,
  resumedUnits: z.array(z.string()),
});

function settingsResponse(stored: StoredBillingSettings) {
  const json = settingsJson(stored.settings);
  return {
    ...(json as {
      enabled: boolean;
      monthlyAllowance: string;
      region: string;
      regionPrices: Record<string, string>;
      instancePrice: string | null;
      freeMps: number;
      unitYellowPercentile: number;
      unitRedPercentile: number;
      freeAggregationTopics: number;
      pricePerAggregationTopic: string;
    }),
    halfCapacityPrice: effectiveHalfCapacityPrice(stored.settings).toString(),
    updatedAt: stored.updatedAt.toISOString(),
    updatedBy: stored.updatedBy,
  };
}

function historyJson(row: BillingSettingsHistoryRow) {
  return {
    id: row.id,
    changedAt: row.changedAt.toISOString(),
    changedBy: row.changedBy,
    changedFields: row.changedFields,
    previous: row.previous,
    current: row.current,
  };
}

function runJson(run: BillingRunRow) {
  return {
    id: run.id,
    kind: run.kind,
    period: run.period.toISOString(),
    trigger: run.trigger,
    status: run.status,
    charged: run.charged,
    total: run.total.toString(),
    failures: run.failures,
    details: run.details,
    error: run.error,
    startedAt: run.startedAt.toISOString(),
    finishedAt: run.finishedAt?.toISOString() ?? null,
  };
}

function badRequest(field: string, message: string): HttpError {
  return new HttpError(400, "invalid_request", `Invalid body field ${field}: ${message}`, {
    issues: [{ location: "body", field, message }],
  });
}

export function registerBillingRoutes(
  app: OpenAPIHono,
  dependencies: BillingDependencies,
  admin: MiddlewareHandler,
  /** Clock of on-demand runs; tests pass a fixed one. */
  clock: () => Date = () => new Date(),
): void {
  const { db, config } = dependencies;

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/billing/settings",
      tags: ["Billing"],
      summary: "Read the monetisation settings",
      responses: { 200: jsonResponse(SettingsSchema, "The settings"), ...errorResponses(401, 403) },
    }),
    async (c) => c.json(settingsResponse(await loadBillingSettings(db, config)), 200),
  );

  app.openapi(
    adminRoute(admin, {
      method: "put",
      path: "/billing/settings",
      tags: ["Billing"],
      summary: "Change the monetisation settings",
      description:
        "Changes the given fields and records the change in the history. The optional " +
        "`X-Changed-By` header names the person making it; `admin` when omitted.",
      request: { body: jsonBody(SettingsChangeSchema) },
      responses: {
        200: jsonResponse(SettingsSchema, "The new settings"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const changedBy = (c.req.header("x-changed-by") ?? "").trim().slice(0, 100) || "admin";
      try {
        const stored = await updateBillingSettings(db, config, c.req.valid("json"), changedBy);
        return c.json(settingsResponse(stored), 200);
      } catch (error) {
        if (!(error instanceof InvalidBillingSettingsError)) throw error;
        throw badRequest(error.field, error.reason);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/billing/settings/history",
      tags: ["Billing"],
      summary: "List the changes of the monetisation settings, newest first",
      request: {
        query: z.object({
          limit: z.coerce
            .number({ error: `expected a whole number from 1 to ${MAX_HISTORY}` })
            .int(`expected a whole number from 1 to ${MAX_HISTORY}`)
            .min(1, `expected a whole number from 1 to ${MAX_HISTORY}`)
            .max(MAX_HISTORY, `expected a whole number from 1 to ${MAX_HISTORY}`)
            .default(50)
            .openapi({ type: "integer" }),
        }),
      },
      responses: {
        200: jsonResponse(z.object({ items: z.array(HistorySchema) }), "The changes"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { limit } = c.req.valid("query");
      const rows = await listSettingsHistory(db, limit);
      return c.json({ items: rows.map(historyJson) }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/billing/run",
      tags: ["Billing"],
      summary: "Bill an hour (or a day of aggregation topics) now",
      description:
        "Charges the yellow and red Units of a graded hour, or the aggregation topics of a day. " +
        "Charges are idempotent per Unit and hour, so a rerun charges only what was missed.",
      request: {
        body: { required: false, content: { "application/json": { schema: RunRequestSchema } } },
      },
      responses: {
        200: jsonResponse(RunSchema, "The run"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = c.req.valid("json") as
        | { kind?: "usage" | "aggregation"; hour?: string }
        | undefined;
      const now = clock();
      if (body?.kind === "aggregation") {
        const day =
          body.hour === undefined
            ? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 1))
            : new Date(body.hour);
        if (day.getTime() % 86_400_000 !== 0) {
          throw badRequest(
            "hour",
            `${day.toISOString()} is not the start of a UTC day; send a time such as 2027-01-01T00:00:00Z`,
          );
        }
        const run = await runAggregationBilling(dependencies, { day, trigger: "manual" });
        return c.json(runJson(run), 200);
      }
      const hour = body?.hour === undefined ? lastCompleteHour(now) : new Date(body.hour);
      try {
        const run = await runUsageBilling(dependencies, { hour, trigger: "manual" });
        return c.json(runJson(run), 200);
      } catch (error) {
        if (!(error instanceof BillingInputError)) throw error;
        throw badRequest("hour", error.message);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/billing/faucet",
      tags: ["Billing"],
      summary: "Grant free tokens to all or chosen users",
      description:
        "Credits free tokens, which are spent first and expire at the next monthly allowance. " +
        "A retry with the same `key` grants nothing twice; the same key with other tokens or reason answers 409.",
      request: { body: jsonBody(FaucetRequestSchema) },
      responses: {
        200: jsonResponse(FaucetResponseSchema, "The grants"),
        ...errorResponses(400, 401, 403, 409),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const userIds =
        body.users === "all"
          ? (await db.select({ id: users.id }).from(users)).map((user) => user.id)
          : body.users;
      if (body.users !== "all") {
        for (const userId of userIds) {
          const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, userId));
          if (user === undefined)
            throw badRequest(
              "users",
              `no user has the id ${userId}; send existing user ids or "all"`,
            );
        }
      }
      try {
        const grants = await grantFaucetTokens(db, {
          callKey: body.key,
          userIds,
          tokens: BigInt(body.tokens),
          reason: body.reason,
        });
        const resumedUnits: string[] = [];
        for (const grant of grants) {
          resumedUnits.push(...(await resumeUnits(dependencies, grant.userId)));
        }
        return c.json(
          { granted: grants.length, tokens: BigInt(body.tokens).toString(), resumedUnits },
          200,
        );
      } catch (error) {
        if (error instanceof IdempotencyConflictError) {
          throw new HttpError(
            409,
            "idempotency_conflict",
            `Faucet key ${JSON.stringify(body.key)} was used with other tokens or reason; use a new key for a new grant`,
          );
        }
        if (error instanceof InvalidLedgerRequestError) throw badRequest("users", error.message);
        throw error;
      }
    },
  );
}
