/**
 * Admin routes of federation policy: domain rules (list, create, update, lift, history) and
 * their import and export as Mastodon domain-block CSV. Engines pick up changes at their next
 * check of the rules version.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  DOMAIN_RULE_CREATORS,
  DOMAIN_RULE_EVENT_TYPES,
  DOMAIN_RULE_KINDS,
  DOMAIN_RULE_SEVERITIES,
  type DomainRuleEventRow,
} from "../../db/schema/index.ts";
import { formatMastodonCsv, importMastodonCsv, MASTODON_CSV_COLUMNS } from "../../policy/csv.ts";
import {
  createDomainRule,
  type DomainRule,
  getDomainRule,
  liftDomainRule,
  listDomainRuleEvents,
  listDomainRules,
  loadAllDomainRules,
  MAX_PUBLIC_COMMENT_LENGTH,
  MAX_REASON_LENGTH,
  type RuleFailure,
  type RuleResult,
  ruleSortKey,
  updateDomainRule,
} from "../../policy/rules.ts";
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

const TimestampSchema = z.string().openapi({ format: "date-time" });
const FutureTimeSchema = z.iso
  .datetime({ offset: true, error: "expected an ISO 8601 time such as 2027-01-01T00:00:00Z" })
  .transform((value) => new Date(value))
  .openapi({ type: "string", format: "date-time", example: "2027-01-01T00:00:00Z" });

const DomainRuleSchema = z
  .object({
    id: z.string(),
    domain: z.string().openapi({ description: "Canonical host: lower case, punycode, no port" }),
    kind: z.enum(DOMAIN_RULE_KINDS),
    severity: z.enum(DOMAIN_RULE_SEVERITIES).nullable(),
    includeSubdomains: z.boolean(),
    reason: z.string().nullable(),
    publicComment: z.string().nullable(),
    expiresAt: TimestampSchema.nullable(),
    active: z.boolean().openapi({ description: "False once `expiresAt` has passed" }),
    createdBy: z.enum(DOMAIN_RULE_CREATORS),
    createdAt: TimestampSchema,
    updatedAt: TimestampSchema,
  })
  .openapi("DomainRule");

const ruleFields = {
  severity: z
    .enum(DOMAIN_RULE_SEVERITIES)
    .nullable()
    .openapi({ description: "Required on deny rules; absent or null on allow rules" }),
  includeSubdomains: z.boolean().openapi({ description: "Default true" }),
  reason: z
    .string()
    .max(MAX_REASON_LENGTH, `expected at most ${MAX_REASON_LENGTH} characters`)
    .nullable()
    .openapi({ description: "Required on deny rules" }),
  publicComment: z
    .string()
    .max(MAX_PUBLIC_COMMENT_LENGTH, `expected at most ${MAX_PUBLIC_COMMENT_LENGTH} characters`)
    .nullable(),
  expiresAt: FutureTimeSchema.nullable().openapi({ description: "Null for a permanent rule" }),
};

const DomainRuleCreateSchema = z
  .strictObject({
    domain: z.string().min(1).max(1000).openapi({
      example: "spam.example",
      description: "Host without port; Unicode names are stored in punycode",
    }),
    kind: z.enum(DOMAIN_RULE_KINDS),
    severity: ruleFields.severity.optional(),
    includeSubdomains: ruleFields.includeSubdomains.optional(),
    reason: ruleFields.reason.optional(),
    publicComment: ruleFields.publicComment.optional(),
    expiresAt: ruleFields.expiresAt.optional(),
  })
  .openapi("DomainRuleCreate");

const DomainRuleUpdateSchema = z
  .strictObject({
    severity: ruleFields.severity.optional(),
    includeSubdomains: ruleFields.includeSubdomains.optional(),
    reason: ruleFields.reason.optional(),
    publicComment: ruleFields.publicComment.optional(),
    expiresAt: ruleFields.expiresAt.optional(),
  })
  .openapi("DomainRuleUpdate");

const DomainRuleListQuerySchema = PageQuerySchema.extend({
  kind: z.enum(DOMAIN_RULE_KINDS).optional(),
  domain: z
    .string()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ description: "Only the rules of this domain (any spelling of it)" }),
});

const DomainRuleEventSchema = z
  .object({
    id: z.number().int(),
    ruleId: z.string(),
    domain: z.string(),
    kind: z.enum(DOMAIN_RULE_KINDS),
    type: z.enum(DOMAIN_RULE_EVENT_TYPES),
    actor: z.string(),
    before: z.record(z.string(), z.unknown()).nullable(),
    after: z.record(z.string(), z.unknown()).nullable(),
    createdAt: TimestampSchema,
  })
  .openapi("DomainRuleEvent");

const ImportQuerySchema = z.strictObject({
  dryRun: z
    .enum(["true", "false"], { error: "expected true or false" })
    .default("true")
    .transform((value) => value === "true")
    .openapi({ type: "string", enum: ["true", "false"], default: "true" }),
  onProblems: z
    .enum(["reject", "skip"], { error: "expected reject or skip" })
    .default("reject")
    .openapi({
      description:
        "`reject` writes nothing when a line has a problem; `skip` imports the other lines",
    }),
});

const ImportReportSchema = z
  .object({
    dryRun: z.boolean(),
    applied: z.boolean(),
    changes: z.array(
      z.object({
        line: z.number().int(),
        domain: z.string(),
        action: z.enum(["create", "update", "unchanged"]),
        severity: z.enum(DOMAIN_RULE_SEVERITIES),
        existing: z
          .object({
            id: z.string(),
            severity: z.enum(DOMAIN_RULE_SEVERITIES).nullable(),
            publicComment: z.string().nullable(),
          })
          .nullable(),
        note: z.string().nullable(),
      }),
    ),
    skipped: z.array(z.object({ line: z.number().int(), domain: z.string(), reason: z.string() })),
    problems: z.array(z.object({ line: z.number().int(), message: z.string() })),
  })
  .openapi("DomainRuleImportReport");

function ruleJson(rule: DomainRule, now = new Date()) {
  return {
    id: rule.id,
    domain: rule.domain,
    kind: rule.kind,
    severity: rule.severity,
    includeSubdomains: rule.includeSubdomains,
    reason: rule.reason,
    publicComment: rule.publicComment,
    expiresAt: rule.expiresAt?.toISOString() ?? null,
    active: rule.expiresAt === null || rule.expiresAt.getTime() > now.getTime(),
    createdBy: rule.createdBy,
    createdAt: rule.createdAt.toISOString(),
    updatedAt: rule.updatedAt.toISOString(),
  };
}

function eventJson(event: DomainRuleEventRow) {
  return {
    id: event.id,
    ruleId: event.ruleId,
    domain: event.domain,
    kind: event.kind,
    type: event.type,
    actor: event.actor,
    before: event.before,
    after: event.after,
    createdAt: event.createdAt.toISOString(),
  };
}

function ruleNotFound(id: string): HttpError {
  return new HttpError(404, "domain_rule_not_found", `Domain rule ${id} not found`);
}

function failureToHttpError(failure: RuleFailure): HttpError {
  switch (failure.kind) {
    case "invalid":
      return invalidFieldError("body", failure.field, failure.message);
    case "not_found":
      return ruleNotFound(failure.id);
    case "exists":
      return new HttpError(
        409,
        "domain_rule_exists",
        `${failure.rule.domain} already has a ${failure.rule.kind} rule (${failure.rule.id}); update that rule instead`,
        { ruleId: failure.rule.id },
      );
  }
}

function unwrap<T>(result: RuleResult<T>): T {
  if (!result.ok) throw failureToHttpError(result.failure);
  return result.value;
}

export function registerPolicyRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db } = services;

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/domain-rules",
      tags: ["Policy"],
      summary: "List domain rules by domain, expired ones included",
      request: { query: DomainRuleListQuerySchema },
      responses: {
        200: jsonResponse(pageOf(DomainRuleSchema, "DomainRulePage"), "A page of domain rules"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const domain = query.domain === undefined ? undefined : canonicalQueryDomain(query.domain);
      const now = new Date();
      const body = await loadPage(c, query, {
        load: (page) => listDomainRules(db, { ...page, kind: query.kind, domain }),
        keyOf: ruleSortKey,
        toItem: (rule) => ruleJson(rule, now),
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/policy/domain-rules",
      tags: ["Policy"],
      summary: "Create an allow or deny rule for a domain",
      request: { body: jsonBody(DomainRuleCreateSchema) },
      responses: {
        201: jsonResponse(DomainRuleSchema, "The rule; `Location` is its URL"),
        ...errorResponses(400, 401, 403, 409),
      },
    }),
    async (c) => {
      const rule = unwrap(await createDomainRule(db, c.req.valid("json"), "admin"));
      setCreatedLocation(c, rule.id);
      return c.json(ruleJson(rule), 201);
    },
  );

  // Registered before /policy/domain-rules/{id}, whose id check would reject `export` with 400.
  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/domain-rules/export",
      tags: ["Policy"],
      summary: "Export the deny rules in force as Mastodon domain-block CSV",
      description:
        `Columns: \`${MASTODON_CSV_COLUMNS.join(",")}\`. \`reject_content\` is written as ` +
        "`silence`. Mastodon applies every block to subdomains, also for rules here that exclude them.",
      responses: {
        200: {
          description: "The CSV file",
          content: { "text/csv": { schema: z.string() } },
        },
        ...errorResponses(401, 403),
      },
    }),
    async (c) => {
      const csv = formatMastodonCsv(await loadAllDomainRules(db));
      c.header("Content-Disposition", 'attachment; filename="domain_blocks.csv"');
      return c.body(csv, 200, { "Content-Type": "text/csv; charset=utf-8" });
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/policy/domain-rules/import",
      tags: ["Policy"],
      summary: "Import a Mastodon domain-block CSV as deny rules, or preview it with dryRun",
      description:
        "Mastodon `suspend` becomes `suspend`, `silence` becomes `reject_content`, and `noop` " +
        "lines are skipped with a reason. An import creates rules for new domains and raises " +
        "the severity of existing deny rules; it never lowers one. Every line that cannot be " +
        "read is listed in `problems` with its line number and the fix.",
      request: {
        query: ImportQuerySchema,
        body: { required: true, content: { "text/csv": { schema: z.string() } } },
      },
      responses: {
        200: jsonResponse(
          ImportReportSchema,
          "What the import changed, or would change on a dry run",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { dryRun, onProblems } = c.req.valid("query");
      const contentType = c.req.header("content-type") ?? "";
      if (!/^(text\/csv|text\/plain)\b/i.test(contentType)) {
        throw new HttpError(
          415,
          "unsupported_media_type",
          "Unsupported request body type; send the CSV file with Content-Type: text/csv",
        );
      }
      const report = await importMastodonCsv(db, await c.req.text(), { dryRun, onProblems });
      if (!dryRun && !report.applied) {
        throw new HttpError(
          400,
          "invalid_csv",
          `${report.problems.length} lines of the CSV have problems and nothing was imported; fix them, or send onProblems=skip to import the other lines`,
          report,
        );
      }
      return c.json(report, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/domain-rules/{id}",
      tags: ["Policy"],
      summary: "Read one domain rule",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(DomainRuleSchema, "The rule"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const rule = await getDomainRule(db, id);
      if (rule === undefined) throw ruleNotFound(id);
      return c.json(ruleJson(rule), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "patch",
      path: "/policy/domain-rules/{id}",
      tags: ["Policy"],
      summary: "Change severity, subdomains, reason, public comment or expiry of a rule",
      description: "Domain and kind cannot change; create a new rule and lift this one instead.",
      request: { params: IdParamsSchema, body: jsonBody(DomainRuleUpdateSchema) },
      responses: {
        200: jsonResponse(DomainRuleSchema, "The updated rule"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const rule = unwrap(await updateDomainRule(db, id, c.req.valid("json"), "admin"));
      return c.json(ruleJson(rule), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "delete",
      path: "/policy/domain-rules/{id}",
      tags: ["Policy"],
      summary: "Lift a domain rule; its history stays readable",
      request: { params: IdParamsSchema },
      responses: {
        204: { description: "Lifted" },
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      unwrap(await liftDomainRule(db, id, "admin"));
      return c.body(null, 204);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/domain-rules/{id}/events",
      tags: ["Policy"],
      summary: `History of a rule, newest first (at most ${MAX_EVENTS} events), also after it was lifted`,
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(
          z.object({ items: z.array(DomainRuleEventSchema) }),
          "The rule's audit events",
        ),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const events = await listDomainRuleEvents(db, id, MAX_EVENTS);
      if (events.length === 0) throw ruleNotFound(id);
      return c.json({ items: events.map(eventJson) }, 200);
    },
  );
}
