/**
 * Admin routes of billing: the monetisation settings and their history, billing runs on demand
 * and their list, stopped Units and the faucet. NodeInfo publishes the settings to everybody.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gt, inArray } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import {
  BILLING_RUN_KINDS,
  BILLING_RUN_STATUSES,
  BILLING_TRIGGERS,
  type BillingRunRow,
  type BillingSettingsHistoryRow,
  billingRuns,
  UNIT_STOP_REASONS,
  unitBillingState,
  units,
  users,
} from "../db/schema/index.ts";
import { lastCompleteHour } from "../grading/measure.ts";
import { invalidFieldError } from "../http/api/fields.ts";
import {
  adminRoute,
  errorResponses,
  invalidCursorError,
  jsonBody,
  jsonResponse,
  loadPage,
} from "../http/api/routing.ts";
import { PageQuerySchema, pageOf } from "../http/api/schemas.ts";
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
const DAY_MS = 86_400_000;
/**
 * How many ended UTC days back `POST /billing/run` bills aggregation topics: yesterday and the
 * day before. A run charges the latest aggregation space snapshot whatever the day, so an older
 * day would be charged with figures measured long after it.
 */
export const AGGREGATION_DAYS_BACK = 2;

/** Builds a query field for a whole number from 1 to `max`, with `fallback` when omitted. */
function limitQuery(max: number, fallback: number) {
  const rule = `expected a whole number from 1 to ${max}`;
  return z.coerce
    .number({ error: rule })
    .int(rule)
    .min(1, rule)
    .max(max, rule)
    .default(fallback)
    .openapi({ type: "integer", minimum: 1, maximum: max, default: fallback });
}

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
          "Start of the UTC hour (for `usage`) or day (for `aggregation`); the last complete hour or day when omitted. " +
          `An aggregation day must have ended and be one of the last ${AGGREGATION_DAYS_BACK} ended UTC days.`,
      }),
  })
  .openapi("BillingRunRequest");

const FaucetRequestSchema = z
  .strictObject({
    key: z.string().min(1).max(100).openapi({
      description: "Idempotency key of this grant; a retry with it grants nothing twice",
    }),
    tokens: z
      .number()
      .int("expected a whole number of tokens")
      .positive("expected at least 1 token")
      .max(Number.MAX_SAFE_INTEGER),
    users: z.union([z.literal("all"), z.array(z.uuid()).min(1).max(10_000)], {
      error: 'expected "all" or a list of 1 to 10000 user ids',
    }),
    reason: z.string().min(1).max(500),
  })
  .openapi("FaucetRequest");

const FaucetResponseSchema = z
  .object({
    granted: z.number().int().openapi({ description: "Users whose grant this call posted" }),
    alreadyGranted: z.number().int().openapi({
      description:
        "Users whose grant an earlier call with the same key posted; nothing was posted for them now",
    }),
    tokens: TokensSchema.openapi({ description: "Tokens of each user's grant" }),
    resumedUnits: z
      .array(z.string())
      .openapi({ description: "Stopped Units resumed by the grant" }),
  })
  .openapi("FaucetResult");

const RunListQuerySchema = z.object({
  kind: z
    .enum(BILLING_RUN_KINDS, { error: `expected one of ${BILLING_RUN_KINDS.join(", ")}` })
    .optional()
    .openapi({ description: "Only runs of this kind; all kinds when omitted" }),
  limit: limitQuery(MAX_HISTORY, 50),
});

const StoppedUnitSchema = z
  .object({
    unitId: z.string(),
    unitName: z.string(),
    ownerId: z.string().nullable(),
    ownerLogin: z.string().nullable(),
    reason: z.enum(UNIT_STOP_REASONS),
    since: TimestampSchema,
    chargeKey: z.string().nullable().openapi({
      description: "Ledger key of the charge that stopped the Unit, such as `usage:<unit>:<hour>`",
    }),
    brokerApplied: z.boolean().openapi({
      description:
        "True when no broker change is pending (applied, or no driver); false means the billing job retries it",
    }),
    brokerError: z.string().nullable().openapi({ description: "Error of the last broker call" }),
  })
  .openapi("StoppedUnit");

function settingsResponse(stored: StoredBillingSettings) {
  return {
    ...settingsJson(stored.settings),
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

/** Returns the start of the UTC day before the day of `now`. */
function lastEndedDay(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 1));
}

/**
 * Checks that `day` starts a UTC day that has ended by `now` and is one of the last
 * {@link AGGREGATION_DAYS_BACK} such days; throws a 400 {@link HttpError} naming the fix otherwise.
 */
function checkAggregationDay(day: Date, now: Date): void {
  const text = day.toISOString();
  if (day.getTime() % DAY_MS !== 0) {
    throw invalidFieldError(
      "body",
      "hour",
      `${text} is not the start of a UTC day; send a time such as 2027-01-01T00:00:00Z`,
    );
  }
  const latest = lastEndedDay(now);
  if (day.getTime() > latest.getTime()) {
    throw invalidFieldError(
      "body",
      "hour",
      `day ${text} has not ended yet; the latest day that can be billed is ${latest.toISOString()}`,
    );
  }
  const earliest = new Date(latest.getTime() - (AGGREGATION_DAYS_BACK - 1) * DAY_MS);
  if (day.getTime() < earliest.getTime()) {
    throw invalidFieldError(
      "body",
      "hour",
      `day ${text} is too old: a run charges the latest aggregation space snapshot, so only ` +
        `days from ${earliest.toISOString()} to ${latest.toISOString()} can be billed`,
    );
  }
}

interface StoppedUnitRow {
  unitId: string;
  unitName: string;
  ownerId: string | null;
  ownerLogin: string | null;
  reason: (typeof UNIT_STOP_REASONS)[number] | null;
  since: Date;
  chargeKey: string | null;
  brokerApplied: boolean;
  brokerError: string | null;
}

function stoppedUnitJson(row: StoppedUnitRow) {
  return {
    ...row,
    // The table's check constraint makes the reason non-null for every stopped Unit.
    reason: row.reason as (typeof UNIT_STOP_REASONS)[number],
    since: row.since.toISOString(),
  };
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
        throw invalidFieldError("body", error.field, error.reason);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/billing/settings/history",
      tags: ["Billing"],
      summary: "List the changes of the monetisation settings, newest first",
      request: { query: z.object({ limit: limitQuery(MAX_HISTORY, 50) }) },
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
        "Charges the yellow and red Units of a graded hour, or the aggregation topics of an ended day. " +
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
        const day = body.hour === undefined ? lastEndedDay(now) : new Date(body.hour);
        checkAggregationDay(day, now);
        const run = await runAggregationBilling(dependencies, { day, trigger: "manual" });
        return c.json(runJson(run), 200);
      }
      const hour = body?.hour === undefined ? lastCompleteHour(now) : new Date(body.hour);
      try {
        const run = await runUsageBilling(dependencies, { hour, trigger: "manual" });
        return c.json(runJson(run), 200);
      } catch (error) {
        if (!(error instanceof BillingInputError)) throw error;
        throw invalidFieldError("body", "hour", error.message);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/billing/runs",
      tags: ["Billing"],
      summary: "List billing runs, latest first",
      description:
        "One row per attempt to bill an hour (`usage`) or a day (`aggregation`), by the job or on demand.",
      request: { query: RunListQuerySchema },
      responses: {
        200: jsonResponse(z.object({ items: z.array(RunSchema) }), "The runs"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { kind, limit } = c.req.valid("query");
      const rows = await db
        .select()
        .from(billingRuns)
        .where(kind === undefined ? undefined : eq(billingRuns.kind, kind))
        .orderBy(desc(billingRuns.startedAt), desc(billingRuns.id))
        .limit(limit);
      return c.json({ items: rows.map(runJson) }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/billing/stopped-units",
      tags: ["Billing"],
      summary: "List the Units that billing stopped, by Unit id",
      description:
        "A Unit is stopped when its owner's balance cannot pay a charge or its load reaches the " +
        "capacity. It is resumed when the owner's balance is above zero again.",
      request: { query: PageQuerySchema },
      responses: {
        200: jsonResponse(pageOf(StoppedUnitSchema, "StoppedUnitPage"), "One page of Units"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = await loadPage(c, c.req.valid("query"), {
        load: ({ limit, after }) => {
          if (after !== undefined && !z.guid().safeParse(after).success) {
            throw invalidCursorError();
          }
          return db
            .select({
              unitId: unitBillingState.unitId,
              unitName: units.name,
              ownerId: units.ownerId,
              ownerLogin: users.login,
              reason: unitBillingState.reason,
              since: unitBillingState.since,
              chargeKey: unitBillingState.chargeKey,
              brokerApplied: unitBillingState.brokerApplied,
              brokerError: unitBillingState.brokerError,
            })
            .from(unitBillingState)
            .innerJoin(units, eq(units.id, unitBillingState.unitId))
            .leftJoin(users, eq(users.id, units.ownerId))
            .where(
              and(
                eq(unitBillingState.state, "stopped"),
                after === undefined ? undefined : gt(unitBillingState.unitId, after),
              ),
            )
            .orderBy(asc(unitBillingState.unitId))
            .limit(limit);
        },
        keyOf: (row) => row.unitId,
        toItem: stoppedUnitJson,
      });
      return c.json(body, 200);
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
        "A retry with the same `key` grants nothing twice: `granted` counts the grants this call " +
        "posted and `alreadyGranted` those an earlier call posted. The same key with other " +
        "tokens or reason answers 409.",
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
        const found = await db
          .select({ id: users.id })
          .from(users)
          .where(inArray(users.id, userIds));
        const known = new Set(found.map((user) => user.id));
        const unknown = userIds.find((userId) => !known.has(userId));
        if (unknown !== undefined) {
          throw invalidFieldError(
            "body",
            "users",
            `no user has the id ${unknown}; send existing user ids or "all"`,
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
        const alreadyGranted = grants.filter((grant) => grant.replayed).length;
        return c.json(
          {
            granted: grants.length - alreadyGranted,
            alreadyGranted,
            tokens: BigInt(body.tokens).toString(),
            resumedUnits,
          },
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
        if (error instanceof InvalidLedgerRequestError)
          throw invalidFieldError("body", "users", error.message);
        throw error;
      }
    },
  );
}
