/**
 * Admin routes of bans: list, read, history, an administrator's manual ban, lift and extend.
 * Engines pick up changes at their next check of the rules version.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  BAN_CONDITIONS,
  BAN_EVENT_TYPES,
  BAN_KINDS,
  type BanEventRow,
} from "../../db/schema/index.ts";
import { createAdminBan, extendBan, liftBan } from "../../policy/bans.ts";
import {
  banHistory,
  banSortKey,
  getBan,
  isBanActive,
  listBans,
} from "../../policy/bans-queries.ts";
import {
  type Ban,
  type BanFailure,
  type BanResult,
  banSettingsFromConfig,
  MAX_BAN_REASON_LENGTH,
} from "../../policy/bans-types.ts";
import type { NodeServices } from "../../services.ts";
import { HttpError } from "../errors.ts";
import { canonicalQueryDomain, invalidFieldError } from "./fields.ts";
import {
  adminRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  loadPage,
  setCreatedLocation,
} from "./routing.ts";
import { IdParamsSchema, PageQuerySchema, pageOf } from "./schemas.ts";

const MAX_EVENTS = 500;
const BANS = "/policy/bans";

const TimestampSchema = z.string().openapi({ format: "date-time" });
const TimeSchema = z.iso
  .datetime({ offset: true, error: "expected an ISO 8601 time such as 2027-01-01T00:00:00Z" })
  .transform((value) => new Date(value))
  .openapi({ type: "string", format: "date-time", example: "2027-01-01T00:00:00Z" });
const ReasonSchema = z
  .string()
  .min(1, "expected a reason for the audit trail")
  .max(MAX_BAN_REASON_LENGTH, `expected at most ${MAX_BAN_REASON_LENGTH} characters`);

const BanSchema = z
  .object({
    id: z.string(),
    kind: z.enum(BAN_KINDS),
    domain: z.string().openapi({ description: "Canonical host: lower case, punycode, no port" }),
    topic: z
      .string()
      .nullable()
      .openapi({ description: "`<domain>/<unit node uuid>` for topic bans" }),
    level: z
      .number()
      .int()
      .openapi({ description: "1: 1 day, 2: 7 days, 3: 30 days, 4: permanent" }),
    condition: z.enum(BAN_CONDITIONS),
    reason: z.string(),
    evidence: z.record(z.string(), z.unknown()).openapi({
      description:
        "The measured numbers: count, windowSeconds, limit, firstSeenAt, lastSeenAt, samples",
    }),
    createdBy: z.string(),
    startsAt: TimestampSchema,
    expiresAt: TimestampSchema.nullable().openapi({ description: "Null for a permanent ban" }),
    active: z.boolean(),
    ruleId: z
      .string()
      .nullable()
      .openapi({ description: "The permanent deny rule this level 4 ban created" }),
    expiredAt: TimestampSchema.nullable(),
    liftedAt: TimestampSchema.nullable(),
    liftedBy: z.string().nullable(),
    liftReason: z.string().nullable(),
  })
  .openapi("Ban");

const BanEventSchema = z
  .object({
    id: z.number().int(),
    banId: z.string(),
    kind: z.enum(BAN_KINDS),
    domain: z.string(),
    topic: z.string().nullable(),
    type: z.enum(BAN_EVENT_TYPES),
    actor: z.string(),
    reason: z.string().nullable(),
    before: z.record(z.string(), z.unknown()).nullable(),
    after: z.record(z.string(), z.unknown()).nullable(),
    createdAt: TimestampSchema,
  })
  .openapi("BanEvent");

const BanListQuerySchema = PageQuerySchema.extend({
  active: z
    .enum(["true", "false"], { error: "expected true or false" })
    .transform((value) => value === "true")
    .optional()
    .openapi({
      type: "string",
      enum: ["true", "false"],
      description: "Only active or only ended bans",
    }),
  kind: z.enum(BAN_KINDS).optional(),
  domain: z
    .string()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ description: "Only the bans of this domain and its topics (any spelling of it)" }),
});

const DomainHistoryQuerySchema = z.object({
  domain: z
    .string()
    .min(1)
    .max(1000)
    .openapi({ description: "The domain whose domain and topic ban events to list" }),
});

/** `until` and `permanent` exclude each other; neither means the escalation ladder decides. */
function checkUntil(
  body: { until?: Date | undefined; permanent?: boolean | undefined },
  ctx: z.RefinementCtx,
  required: boolean,
): void {
  if (body.until !== undefined && body.permanent === true) {
    ctx.addIssue({
      code: "custom",
      path: ["until"],
      message: "send either until or permanent, not both",
    });
  } else if (required && body.until === undefined && body.permanent !== true) {
    ctx.addIssue({
      code: "custom",
      path: ["until"],
      message: "expected until (a time) or permanent: true",
    });
  }
}

const BanCreateSchema = z
  .strictObject({
    kind: z.enum(BAN_KINDS),
    domain: z.string().min(1).max(1000).openapi({ example: "spam.example" }),
    topic: z.string().min(1).max(1100).optional().openapi({
      description:
        "Required for topic bans: `<Pepeunit domain>/<unit node uuid>`; the Pepeunit domain may differ from `domain`, the host of the node that publishes the topic",
      example: "unit.spam.example/9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10",
    }),
    reason: ReasonSchema,
    until: TimeSchema.optional().openapi({
      description: "End of the ban; without it and without permanent, the escalation level decides",
    }),
    permanent: z.literal(true).optional(),
    evidence: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: "Free-form notes" }),
  })
  .superRefine((body, ctx) => {
    checkUntil(body, ctx, false);
    if (body.kind === "topic" && body.topic === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["topic"],
        message: "a topic ban needs topic <Pepeunit domain>/<unit node uuid>",
      });
    }
    if (body.kind === "domain" && body.topic !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["topic"],
        message: "a domain ban has no topic; remove the field",
      });
    }
  })
  .openapi("BanCreate");

const BanLiftSchema = z.strictObject({ reason: ReasonSchema }).openapi("BanLift");

const BanExtendSchema = z
  .strictObject({
    until: TimeSchema.optional().openapi({ description: "New end, later than the current one" }),
    permanent: z.literal(true).optional(),
    reason: ReasonSchema,
  })
  .superRefine((body, ctx) => checkUntil(body, ctx, true))
  .openapi("BanExtend");

function banJson(ban: Ban, now: Date) {
  return {
    id: ban.id,
    kind: ban.kind,
    domain: ban.domain,
    topic: ban.topic,
    level: ban.level,
    condition: ban.condition,
    reason: ban.reason,
    evidence: ban.evidence,
    createdBy: ban.createdBy,
    startsAt: ban.startsAt.toISOString(),
    expiresAt: ban.expiresAt?.toISOString() ?? null,
    active: isBanActive(ban, now),
    ruleId: ban.ruleId,
    expiredAt: ban.expiredAt?.toISOString() ?? null,
    liftedAt: ban.liftedAt?.toISOString() ?? null,
    liftedBy: ban.liftedBy,
    liftReason: ban.liftReason,
  };
}

function eventJson(event: BanEventRow) {
  return {
    id: event.id,
    banId: event.banId,
    kind: event.kind,
    domain: event.domain,
    topic: event.topic,
    type: event.type,
    actor: event.actor,
    reason: event.reason,
    before: event.before,
    after: event.after,
    createdAt: event.createdAt.toISOString(),
  };
}

function banNotFound(id: string): HttpError {
  return new HttpError(404, "ban_not_found", `Ban ${id} not found`);
}

function failureToHttpError(failure: BanFailure): HttpError {
  switch (failure.kind) {
    case "invalid":
      return invalidFieldError("body", failure.field, failure.message);
    case "not_found":
      return banNotFound(failure.id);
    case "ended":
      return new HttpError(
        409,
        "ban_ended",
        `Ban ${failure.ban.id} has already ended (${failure.ban.liftedAt === null ? "expired" : "lifted"}); create a new ban instead`,
        { banId: failure.ban.id },
      );
    case "exists":
      return new HttpError(
        409,
        "ban_exists",
        `An active ban (${failure.ban.id}) already covers ${failure.ban.topic ?? failure.ban.domain}; extend that ban instead`,
        { banId: failure.ban.id },
      );
  }
}

function unwrap<T>(result: BanResult<T>): T {
  if (!result.ok) throw failureToHttpError(result.failure);
  return result.value;
}

export function registerBanRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
  /** Clock of decisions and events; tests pass a movable one. */
  clock: () => Date = () => new Date(),
): void {
  const { db } = services;
  const settings = banSettingsFromConfig(services.config);

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: BANS,
      tags: ["Policy"],
      summary: "List bans of domains and topics, newest first",
      request: { query: BanListQuerySchema },
      responses: {
        200: jsonResponse(pageOf(BanSchema, "BanPage"), "A page of bans"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const domain = query.domain === undefined ? undefined : canonicalQueryDomain(query.domain);
      const now = clock();
      const body = await loadPage(c, query, {
        load: (page) =>
          listBans(db, { ...page, active: query.active, kind: query.kind, domain, now }),
        keyOf: banSortKey,
        toItem: (ban) => banJson(ban, now),
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: BANS,
      tags: ["Policy"],
      summary: "Ban a domain or a topic by hand (condition admin)",
      description:
        "Without `until` or `permanent`, the ban lasts as long as its escalation level says: " +
        "1, 7 or 30 days, or permanent from the fourth ban within 365 days.",
      request: { body: jsonBody(BanCreateSchema) },
      responses: {
        201: jsonResponse(BanSchema, "The ban; `Location` is its URL"),
        ...errorResponses(400, 401, 403, 409),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const now = clock();
      const subject =
        body.kind === "topic"
          ? { kind: "topic" as const, domain: body.domain, topic: body.topic ?? "" }
          : { kind: "domain" as const, domain: body.domain };
      const expiresAt = body.permanent === true ? null : body.until;
      const { ban } = unwrap(
        await createAdminBan(
          db,
          { subject, reason: body.reason, expiresAt, evidence: body.evidence },
          settings,
          now,
        ),
      );
      setCreatedLocation(c, ban.id);
      return c.json(banJson(ban, now), 201);
    },
  );

  // Registered before /policy/bans/{id}, whose id check would reject `history` with 400.
  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: `${BANS}/history`,
      tags: ["Policy"],
      summary: `Ban events of a domain and its topics, newest first (at most ${MAX_EVENTS})`,
      request: { query: DomainHistoryQuerySchema },
      responses: {
        200: jsonResponse(z.object({ items: z.array(BanEventSchema) }), "The audit events"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const domain = canonicalQueryDomain(c.req.valid("query").domain);
      const events = await banHistory(db, { domain }, MAX_EVENTS);
      return c.json({ items: events.map(eventJson) }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: `${BANS}/{id}`,
      tags: ["Policy"],
      summary: "Read one ban with its evidence",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(BanSchema, "The ban"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const ban = await getBan(db, id);
      if (ban === undefined) throw banNotFound(id);
      return c.json(banJson(ban, clock()), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: `${BANS}/{id}/history`,
      tags: ["Policy"],
      summary: `History of a ban, newest first (at most ${MAX_EVENTS} events)`,
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(z.object({ items: z.array(BanEventSchema) }), "The ban's audit events"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const events = await banHistory(db, { banId: id }, MAX_EVENTS);
      if (events.length === 0) throw banNotFound(id);
      return c.json({ items: events.map(eventJson) }, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: `${BANS}/{id}/lift`,
      tags: ["Policy"],
      summary: "End an active ban now",
      description:
        "A level 4 domain ban also lifts the permanent deny rule it created. A lifted ban no " +
        "longer counts for the escalation of later bans.",
      request: { params: IdParamsSchema, body: jsonBody(BanLiftSchema) },
      responses: {
        200: jsonResponse(BanSchema, "The lifted ban"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const now = clock();
      const ban = unwrap(await liftBan(db, id, "admin", c.req.valid("json").reason, now));
      return c.json(banJson(ban, now), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: `${BANS}/{id}/extend`,
      tags: ["Policy"],
      summary: "Move the end of an active ban later, or make it permanent",
      request: { params: IdParamsSchema, body: jsonBody(BanExtendSchema) },
      responses: {
        200: jsonResponse(BanSchema, "The extended ban"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const now = clock();
      let until: Date | "permanent";
      if (body.permanent === true) until = "permanent";
      else if (body.until !== undefined) until = body.until;
      else throw invalidFieldError("body", "until", "expected until or permanent: true");
      const ban = unwrap(await extendBan(db, id, until, "admin", body.reason, now));
      return c.json(banJson(ban, now), 200);
    },
  );
}
