import { OpenAPIHono } from "@hono/zod-openapi";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { loadConfig } from "../../config.ts";
import { domainRuleEvents, domainRules, domainRulesVersion } from "../../db/schema/index.ts";
import { ErrorCounter } from "../../metering/errors/counter.ts";
import { DomainPolicyEngine } from "../../policy/engine.ts";
import type { NodeServices } from "../../services.ts";
import { createTimeSeriesStore } from "../../timeseries/factory.ts";
import { requireAdminToken } from "../auth.ts";
import { handleApiError, validationHook } from "./failures.ts";
import { registerPolicyRoutes } from "./policy.ts";
import { ADMIN_TOKEN, adminRequest, FakeFederationPort } from "./test-app.ts";

let database: TestDatabase;
let app: Hono;

const RULES = "/api/v1/policy/domain-rules";

interface RuleJson {
  id: string;
  domain: string;
  kind: string;
  severity: string | null;
  includeSubdomains: boolean;
  reason: string | null;
  publicComment: string | null;
  expiresAt: string | null;
  active: boolean;
  createdBy: string;
}

interface ErrorJson {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "api-policy");
  const config = loadConfig({ PU_NODE_ENV: "test", PU_NODE_ORIGIN: "https://node.example.com" });
  const services: NodeServices = {
    config,
    pool: database.pool,
    db: database.db,
    federation: new FakeFederationPort(),
    adminToken: ADMIN_TOKEN,
    timeSeries: createTimeSeriesStore(config, database.pool),
    errorCounter: new ErrorCounter(),
    policy: new DomainPolicyEngine("open"),
  };
  const api = new OpenAPIHono({ defaultHook: validationHook });
  api.onError(handleApiError);
  registerPolicyRoutes(api, services, requireAdminToken(ADMIN_TOKEN));
  app = new Hono();
  app.route("/api/v1", api);
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.db.delete(domainRules);
  await database.db.delete(domainRuleEvents);
  await database.db.delete(domainRulesVersion);
});

async function createRule(body: Record<string, unknown>): Promise<RuleJson> {
  const response = await app.request(RULES, adminRequest("POST", body));
  expect(response.status).toBe(201);
  return (await response.json()) as RuleJson;
}

function csvRequest(text: string, contentType = "text/csv"): RequestInit {
  const { headers } = adminRequest("POST");
  return {
    method: "POST",
    headers: { ...(headers as Record<string, string>), "content-type": contentType },
    body: text,
  };
}

describe("domain rule routes", () => {
  it("require the admin token", async () => {
    const response = await app.request(RULES);
    expect(response.status).toBe(401);
  });

  it("create, read, update, list, lift and keep history", async () => {
    const created = await createRule({
      domain: "Spam.Example.",
      kind: "deny",
      severity: "suspend",
      reason: "spam wave",
    });
    expect(created).toMatchObject({
      domain: "spam.example",
      kind: "deny",
      severity: "suspend",
      includeSubdomains: true,
      reason: "spam wave",
      expiresAt: null,
      active: true,
      createdBy: "admin",
    });

    const read = await app.request(`${RULES}/${created.id}`, adminRequest("GET"));
    expect(read.status).toBe(200);
    expect(((await read.json()) as RuleJson).id).toBe(created.id);

    const patched = await app.request(
      `${RULES}/${created.id}`,
      adminRequest("PATCH", { severity: "reject_content", expiresAt: "2099-01-01T00:00:00Z" }),
    );
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({
      severity: "reject_content",
      expiresAt: "2099-01-01T00:00:00.000Z",
    });

    const list = await app.request(`${RULES}?domain=SPAM.example`, adminRequest("GET"));
    expect(list.status).toBe(200);
    const page = (await list.json()) as { items: RuleJson[]; next: string | null };
    expect(page.items.map((rule) => rule.id)).toEqual([created.id]);

    const lifted = await app.request(`${RULES}/${created.id}`, adminRequest("DELETE"));
    expect(lifted.status).toBe(204);
    const afterLift = await app.request(`${RULES}/${created.id}`, adminRequest("GET"));
    expect(afterLift.status).toBe(404);
    expect(((await afterLift.json()) as ErrorJson).error.code).toBe("domain_rule_not_found");

    const history = await app.request(`${RULES}/${created.id}/events`, adminRequest("GET"));
    expect(history.status).toBe(200);
    const events = (await history.json()) as { items: Array<{ type: string; actor: string }> };
    expect(events.items.map((event) => event.type)).toEqual(["lifted", "updated", "created"]);
    expect(events.items.every((event) => event.actor === "admin")).toBe(true);
  });

  it("pages the list with a next cursor", async () => {
    for (const domain of ["a.example", "b.example", "c.example"]) {
      await createRule({ domain, kind: "allow" });
    }
    const first = await app.request(`${RULES}?limit=2`, adminRequest("GET"));
    const firstPage = (await first.json()) as { items: RuleJson[]; next: string | null };
    expect(firstPage.items.map((rule) => rule.domain)).toEqual(["a.example", "b.example"]);
    expect(firstPage.next).not.toBeNull();
    expect(first.headers.get("link")).toContain('rel="next"');

    const second = await app.request(
      `${RULES}?limit=2&cursor=${firstPage.next}`,
      adminRequest("GET"),
    );
    const secondPage = (await second.json()) as { items: RuleJson[]; next: string | null };
    expect(secondPage.items.map((rule) => rule.domain)).toEqual(["c.example"]);
    expect(secondPage.next).toBeNull();
  });

  it.each([
    [{ domain: "spam.example:8443", kind: "deny", severity: "suspend", reason: "x" }, "domain"],
    [{ domain: "spam.example", kind: "deny", reason: "x" }, "severity"],
    [{ domain: "spam.example", kind: "deny", severity: "suspend" }, "reason"],
    [{ domain: "spam.example", kind: "block" }, "kind"],
    [{ domain: "spam.example", kind: "allow", expiresAt: "tomorrow" }, "expiresAt"],
    [{ domain: "spam.example", kind: "allow", expiresAt: "2000-01-01T00:00:00Z" }, "expiresAt"],
    [{ domain: "spam.example", kind: "allow", colour: "red" }, "colour"],
  ])("reject %j naming field %s", async (body, field) => {
    const response = await app.request(RULES, adminRequest("POST", body));
    expect(response.status).toBe(400);
    const error = (await response.json()) as ErrorJson;
    expect(error.error.code).toBe("invalid_request");
    const issues = error.error.details?.issues as Array<{ field: string }>;
    expect(issues.map((issue) => issue.field)).toContain(field);
  });

  it("reject a second rule of the same domain and kind with 409", async () => {
    const first = await createRule({ domain: "пример.рф", kind: "allow" });
    const response = await app.request(
      RULES,
      adminRequest("POST", { domain: "xn--e1afmkfd.xn--p1ai", kind: "allow" }),
    );
    expect(response.status).toBe(409);
    const error = (await response.json()) as ErrorJson;
    expect(error.error.code).toBe("domain_rule_exists");
    expect(error.error.details?.ruleId).toBe(first.id);
  });

  it("return 404 for events of an unknown rule", async () => {
    const response = await app.request(
      `${RULES}/0b4f7c1e-8f7a-4a51-9d0e-3c5b8f2a1d44/events`,
      adminRequest("GET"),
    );
    expect(response.status).toBe(404);
  });
});

describe("domain rule CSV routes", () => {
  const LIST = [
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate",
    'spam.example,suspend,false,false,"spam, lots",false',
    "loud.example,silence,false,false,,false",
    "flags.example,noop,true,false,,false",
  ].join("\n");

  it("preview by default, then import and export", async () => {
    const preview = await app.request(`${RULES}/import`, csvRequest(LIST));
    expect(preview.status).toBe(200);
    const report = (await preview.json()) as {
      dryRun: boolean;
      applied: boolean;
      changes: Array<{ domain: string; action: string }>;
      skipped: Array<{ line: number }>;
    };
    expect(report.dryRun).toBe(true);
    expect(report.applied).toBe(false);
    expect(report.changes.map((change) => change.action)).toEqual(["create", "create"]);
    expect(report.skipped.map((line) => line.line)).toEqual([4]);
    expect(await database.db.select().from(domainRules)).toEqual([]);

    const applied = await app.request(`${RULES}/import?dryRun=false`, csvRequest(LIST));
    expect(applied.status).toBe(200);
    expect(((await applied.json()) as { applied: boolean }).applied).toBe(true);

    const exported = await app.request(`${RULES}/export`, adminRequest("GET"));
    expect(exported.status).toBe(200);
    expect(exported.headers.get("content-type")).toContain("text/csv");
    expect(await exported.text()).toBe(
      [
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate",
        "loud.example,silence,false,false,,false",
        'spam.example,suspend,false,false,"spam, lots",false',
        "",
      ].join("\n"),
    );
  });

  it("reject an import with bad lines and list them", async () => {
    const response = await app.request(
      `${RULES}/import?dryRun=false`,
      csvRequest(`${LIST}\nnot a domain,suspend`),
    );
    expect(response.status).toBe(400);
    const error = (await response.json()) as ErrorJson;
    expect(error.error.code).toBe("invalid_csv");
    expect(error.error.details?.problems).toEqual([
      { line: 5, message: expect.stringContaining("spaces") },
    ]);
    expect(await database.db.select().from(domainRules)).toEqual([]);
  });

  it("reject a JSON body for the import", async () => {
    const response = await app.request(
      `${RULES}/import`,
      csvRequest(JSON.stringify({ csv: LIST }), "application/json"),
    );
    expect(response.status).toBe(415);
  });
});
