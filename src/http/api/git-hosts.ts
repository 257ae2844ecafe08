/**
 * Admin routes of git host rules: which hosts the repository URLs of Repos may point at (list,
 * create, update, remove, history), and a check of one URL against the rules in force.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  GIT_HOST_RULE_CREATORS,
  GIT_HOST_RULE_EVENT_TYPES,
  GIT_HOST_RULE_KINDS,
  type GitHostRuleEventRow,
} from "../../db/schema/index.ts";
import { canonicalRuleDomain, InvalidHostError } from "../../policy/domain.ts";
import {
  checkRepositoryUrl,
  createGitHostRule,
  type GitHostDecision,
  type GitHostRule,
  type GitHostRuleFailure,
  type GitHostRuleResult,
  getGitHostRule,
  gitHostRuleSortKey,
  listGitHostRuleEvents,
  listGitHostRules,
  MAX_GIT_HOST_REASON_LENGTH,
  removeGitHostRule,
  updateGitHostRule,
} from "../../policy/git-hosts.ts";
import {
  InvalidRepositoryUrlError,
  MAX_REPOSITORY_URL_LENGTH,
  REPOSITORY_URL_FORMS,
} from "../../policy/repository-url.ts";
import type { NodeServices } from "../../services.ts";
import { HttpError } from "../errors.ts";
import { invalidFieldError } from "./fields.ts";
import {
  adminRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  loadPage,
  setCreatedLocation,
} from "./routing.ts";
import { IdParamsSchema, PageQuerySchema } from "./schemas.ts";

const MAX_EVENTS = 500;

const TimestampSchema = z.string().openapi({ format: "date-time" });
const ModeSchema = z.enum(["open", "allowlist"]).openapi({
  description:
    "`open` while no allow rule exists: every host without a deny rule is accepted. " +
    "`allowlist` from the first allow rule on: only allowed hosts are accepted.",
});

const GitHostRuleSchema = z
  .object({
    id: z.string(),
    host: z.string().openapi({ description: "Canonical host: lower case, punycode, no port" }),
    kind: z.enum(GIT_HOST_RULE_KINDS),
    includeSubdomains: z.boolean(),
    reason: z.string().nullable(),
    createdBy: z.enum(GIT_HOST_RULE_CREATORS),
    createdAt: TimestampSchema,
    updatedAt: TimestampSchema,
  })
  .openapi("GitHostRule");

const reasonField = z
  .string()
  .max(MAX_GIT_HOST_REASON_LENGTH, `expected at most ${MAX_GIT_HOST_REASON_LENGTH} characters`)
  .nullable()
  .openapi({ description: "Required on deny rules; shown in the error of a rejected Repo" });

const GitHostRuleCreateSchema = z
  .strictObject({
    host: z.string().min(1).max(1000).openapi({
      example: "git.example.com",
      description: "Host without port or scheme; Unicode names are stored in punycode",
    }),
    kind: z.enum(GIT_HOST_RULE_KINDS),
    includeSubdomains: z.boolean().optional().openapi({ description: "Default true" }),
    reason: reasonField.optional(),
  })
  .openapi("GitHostRuleCreate");

const GitHostRuleUpdateSchema = z
  .strictObject({
    includeSubdomains: z.boolean().optional(),
    reason: reasonField.optional(),
  })
  .openapi("GitHostRuleUpdate");

const GitHostRuleListQuerySchema = PageQuerySchema.extend({
  kind: z.enum(GIT_HOST_RULE_KINDS).optional(),
  host: z
    .string()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ description: "Only the rules of this host (any spelling of it)" }),
});

const GitHostRulePageSchema = z
  .object({ items: z.array(GitHostRuleSchema), next: z.string().nullable(), mode: ModeSchema })
  .openapi("GitHostRulePage");

const GitHostRuleEventSchema = z
  .object({
    id: z.number().int(),
    ruleId: z.string(),
    host: z.string(),
    kind: z.enum(GIT_HOST_RULE_KINDS),
    type: z.enum(GIT_HOST_RULE_EVENT_TYPES),
    actor: z.string(),
    before: z.record(z.string(), z.unknown()).nullable(),
    after: z.record(z.string(), z.unknown()).nullable(),
    createdAt: TimestampSchema,
  })
  .openapi("GitHostRuleEvent");

const CheckRequestSchema = z
  .strictObject({
    url: z
      .string()
      .min(1)
      .max(MAX_REPOSITORY_URL_LENGTH)
      .openapi({ example: "git@github.com:owner/firmware.git", description: REPOSITORY_URL_FORMS }),
  })
  .openapi("GitHostCheckRequest");

const GitHostDecisionSchema = z
  .object({
    allowed: z.boolean(),
    host: z.string().openapi({ description: "Canonical host of the URL" }),
    mode: ModeSchema,
    rule: z
      .object({
        id: z.string(),
        host: z.string(),
        kind: z.enum(GIT_HOST_RULE_KINDS),
        includeSubdomains: z.boolean(),
        reason: z.string().nullable(),
      })
      .nullable()
      .openapi({ description: "The deny rule that matched, or the allow rule on an allowlist" }),
    reason: z.string(),
  })
  .openapi("GitHostDecision");

function ruleJson(rule: GitHostRule) {
  return {
    id: rule.id,
    host: rule.host,
    kind: rule.kind,
    includeSubdomains: rule.includeSubdomains,
    reason: rule.reason,
    createdBy: rule.createdBy,
    createdAt: rule.createdAt.toISOString(),
    updatedAt: rule.updatedAt.toISOString(),
  };
}

function eventJson(event: GitHostRuleEventRow) {
  return {
    id: event.id,
    ruleId: event.ruleId,
    host: event.host,
    kind: event.kind,
    type: event.type,
    actor: event.actor,
    before: event.before,
    after: event.after,
    createdAt: event.createdAt.toISOString(),
  };
}

function ruleNotFound(id: string): HttpError {
  return new HttpError(404, "git_host_rule_not_found", `Git host rule ${id} not found`);
}

function failureToHttpError(failure: GitHostRuleFailure): HttpError {
  switch (failure.kind) {
    case "invalid":
      return invalidFieldError("body", failure.field, failure.message);
    case "not_found":
      return ruleNotFound(failure.id);
    case "exists":
      return new HttpError(
        409,
        "git_host_rule_exists",
        `${failure.rule.host} already has a ${failure.rule.kind} rule (${failure.rule.id}); update that rule instead`,
        { ruleId: failure.rule.id },
      );
  }
}

function unwrap<T>(result: GitHostRuleResult<T>): T {
  if (!result.ok) throw failureToHttpError(result.failure);
  return result.value;
}

export function registerGitHostRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db } = services;

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/git-hosts",
      tags: ["Policy"],
      summary: "List git host rules by host, with the mode they put the node in",
      request: { query: GitHostRuleListQuerySchema },
      responses: {
        200: jsonResponse(GitHostRulePageSchema, "A page of git host rules"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      let host: string | undefined;
      try {
        host = query.host === undefined ? undefined : canonicalRuleDomain(query.host);
      } catch (error) {
        if (!(error instanceof InvalidHostError)) throw error;
        throw invalidFieldError("query", "host", error.reason);
      }
      const page = await loadPage(c, query, {
        load: (request) => listGitHostRules(db, { ...request, kind: query.kind, host }),
        keyOf: gitHostRuleSortKey,
        toItem: ruleJson,
      });
      const anyAllow = await listGitHostRules(db, { limit: 1, kind: "allow" });
      return c.json({ ...page, mode: anyAllow.length > 0 ? "allowlist" : "open" } as const, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/policy/git-hosts",
      tags: ["Policy"],
      summary: "Create an allow or deny rule for a git host",
      description:
        "The first allow rule turns the rules into an allowlist: from then on, Repos are accepted " +
        "only from allowed hosts. A deny rule rejects its host in every mode.",
      request: { body: jsonBody(GitHostRuleCreateSchema) },
      responses: {
        201: jsonResponse(GitHostRuleSchema, "The rule; `Location` is its URL"),
        ...errorResponses(400, 401, 403, 409),
      },
    }),
    async (c) => {
      const rule = unwrap(await createGitHostRule(db, c.req.valid("json"), "admin"));
      setCreatedLocation(c, rule.id);
      return c.json(ruleJson(rule), 201);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/policy/git-hosts/check",
      tags: ["Policy"],
      summary: "Check a repository URL against the git host rules in force",
      request: { body: jsonBody(CheckRequestSchema) },
      responses: {
        200: jsonResponse(GitHostDecisionSchema, "The decision, with the rule that made it"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { url } = c.req.valid("json");
      try {
        const decision: GitHostDecision = await checkRepositoryUrl(db, url);
        return c.json(decision, 200);
      } catch (error) {
        if (!(error instanceof InvalidRepositoryUrlError)) throw error;
        throw invalidFieldError("body", "url", error.message);
      }
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/git-hosts/{id}",
      tags: ["Policy"],
      summary: "Read one git host rule",
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(GitHostRuleSchema, "The rule"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const rule = await getGitHostRule(db, id);
      if (rule === undefined) throw ruleNotFound(id);
      return c.json(ruleJson(rule), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "patch",
      path: "/policy/git-hosts/{id}",
      tags: ["Policy"],
      summary: "Change whether a git host rule includes subdomains, or its reason",
      description: "Host and kind cannot change; create a new rule and remove this one instead.",
      request: { params: IdParamsSchema, body: jsonBody(GitHostRuleUpdateSchema) },
      responses: {
        200: jsonResponse(GitHostRuleSchema, "The updated rule"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const rule = unwrap(await updateGitHostRule(db, id, c.req.valid("json"), "admin"));
      return c.json(ruleJson(rule), 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "delete",
      path: "/policy/git-hosts/{id}",
      tags: ["Policy"],
      summary: "Remove a git host rule; its history stays readable",
      description: "Removing the last allow rule makes the rules open again.",
      request: { params: IdParamsSchema },
      responses: {
        204: { description: "Removed" },
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      unwrap(await removeGitHostRule(db, id, "admin"));
      return c.body(null, 204);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/policy/git-hosts/{id}/history",
      tags: ["Policy"],
      summary: `History of a git host rule, newest first (at most ${MAX_EVENTS} events), also after it was removed`,
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(
          z.object({ items: z.array(GitHostRuleEventSchema) }),
          "The rule's audit events",
        ),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const events = await listGitHostRuleEvents(db, id, MAX_EVENTS);
      if (events.length === 0) throw ruleNotFound(id);
      return c.json({ items: events.map(eventJson) }, 200);
    },
  );
}
