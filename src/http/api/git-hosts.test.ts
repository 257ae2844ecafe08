import type { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { gitHostRuleEvents, gitHostRules, repos } from "../../db/schema/index.ts";
import { deniedRepositoryCounter } from "../../policy/git-hosts.ts";
import { adminRequest, createTestApi, FakeFederationPort } from "./test-app.ts";

let database: TestDatabase;
let app: Hono;

const RULES = "/api/v1/policy/git-hosts";

interface RuleJson {
  id: string;
  host: string;
  kind: string;
  includeSubdomains: boolean;
  reason: string | null;
  createdBy: string;
}

interface ErrorJson {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "api-git-hosts");
  app = createTestApi(database, new FakeFederationPort());
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  await database.db.delete(repos);
  await database.db.delete(gitHostRules);
  await database.db.delete(gitHostRuleEvents);
});

async function createRule(body: Record<string, unknown>): Promise<RuleJson> {
  const response = await app.request(RULES, adminRequest("POST", body));
  expect(response.status).toBe(201);
  return (await response.json()) as RuleJson;
}

async function deniedCount(source: string): Promise<number> {
  const metric = await deniedRepositoryCounter.get();
  return metric.values.find((value) => value.labels.source === source)?.value ?? 0;
}

describe("git host rule routes", () => {
  it("creates, reads, updates and removes a rule", async () => {
    const response = await app.request(
      RULES,
      adminRequest("POST", { host: "Evil.Example", kind: "deny", reason: "malware" }),
    );
    expect(response.status).toBe(201);
    const rule = (await response.json()) as RuleJson;
    expect(rule).toMatchObject({
      host: "evil.example",
      kind: "deny",
      includeSubdomains: true,
      reason: "malware",
      createdBy: "admin",
    });
    expect(response.headers.get("location")).toBe(`${RULES}/${rule.id}`);

    const read = await app.request(`${RULES}/${rule.id}`, adminRequest("GET"));
    expect(read.status).toBe(200);
    expect(((await read.json()) as RuleJson).id).toBe(rule.id);

    const patched = await app.request(
      `${RULES}/${rule.id}`,
      adminRequest("PATCH", { includeSubdomains: false }),
    );
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as RuleJson).includeSubdomains).toBe(false);

    const removed = await app.request(`${RULES}/${rule.id}`, adminRequest("DELETE"));
    expect(removed.status).toBe(204);
    const afterRemoval = await app.request(`${RULES}/${rule.id}`, adminRequest("GET"));
    expect(afterRemoval.status).toBe(404);
    expect(((await afterRemoval.json()) as ErrorJson).error.code).toBe("git_host_rule_not_found");

    const history = await app.request(`${RULES}/${rule.id}/history`, adminRequest("GET"));
    expect(history.status).toBe(200);
    const { items } = (await history.json()) as { items: { type: string; actor: string }[] };
    expect(items.map((event) => event.type)).toEqual(["removed", "updated", "created"]);
  });

  it("lists rules by host with the mode", async () => {
    const empty = await app.request(RULES, adminRequest("GET"));
    expect(await empty.json()).toEqual({ items: [], next: null, mode: "open" });

    await createRule({ host: "gitlab.com", kind: "allow" });
    await createRule({ host: "github.com", kind: "allow" });
    await createRule({ host: "evil.example", kind: "deny", reason: "malware" });
    const first = await app.request(`${RULES}?limit=2`, adminRequest("GET"));
    const page = (await first.json()) as { items: RuleJson[]; next: string | null; mode: string };
    expect(page.mode).toBe("allowlist");
    expect(page.items.map((rule) => rule.host)).toEqual(["evil.example", "github.com"]);
    expect(page.next).not.toBeNull();
    const second = await app.request(
      `${RULES}?limit=2&cursor=${page.next ?? ""}`,
      adminRequest("GET"),
    );
    const rest = (await second.json()) as { items: RuleJson[]; next: string | null };
    expect(rest.items.map((rule) => rule.host)).toEqual(["gitlab.com"]);
    expect(rest.next).toBeNull();

    const filtered = await app.request(`${RULES}?host=GitHub.com.&kind=allow`, adminRequest("GET"));
    const byHost = (await filtered.json()) as { items: RuleJson[] };
    expect(byHost.items.map((rule) => rule.host)).toEqual(["github.com"]);
  });

  it("rejects an invalid host with the field and the fix", async () => {
    const response = await app.request(
      RULES,
      adminRequest("POST", { host: "github.com:443", kind: "allow" }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.message).toBe(
      "Invalid body field host: a rule covers every port of a host; remove :443 and name github.com",
    );
  });

  it("rejects a second rule of the same kind with 409", async () => {
    const rule = await createRule({ host: "github.com", kind: "allow" });
    const response = await app.request(
      RULES,
      adminRequest("POST", { host: "GITHUB.COM", kind: "allow" }),
    );
    expect(response.status).toBe(409);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("git_host_rule_exists");
    expect(body.error.details).toEqual({ ruleId: rule.id });
  });

  it("appear in the OpenAPI document", async () => {
    const response = await app.request("/api/v1/openapi.json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as {
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    expect(Object.keys(document.paths["/policy/git-hosts"] ?? {}).sort()).toEqual(["get", "post"]);
    expect(Object.keys(document.paths["/policy/git-hosts/{id}"] ?? {}).sort()).toEqual([
      "delete",
      "get",
      "patch",
    ]);
    expect(document.paths["/policy/git-hosts/check"]?.post).toBeDefined();
    expect(document.paths["/policy/git-hosts/{id}/history"]?.get).toBeDefined();
    expect(document.components.schemas.GitHostRulePage?.properties?.mode).toBeDefined();
    const createRepo = document.paths["/repos"]?.post as { responses: Record<string, unknown> };
    expect(createRepo.responses["422"]).toBeDefined();
  });

  it("requires the admin token", async () => {
    const response = await app.request(RULES);
    expect(response.status).toBe(401);
  });
});

describe("git host check route", () => {
  it("returns the decision and the rule", async () => {
    const rule = await createRule({ host: "evil.example", kind: "deny", reason: "malware" });
    const response = await app.request(
      `${RULES}/check`,
      adminRequest("POST", { url: "git@git.evil.example:o/r.git" }),
    );
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      allowed: false,
      host: "git.evil.example",
      mode: "open",
      rule: {
        id: rule.id,
        host: "evil.example",
        kind: "deny",
        includeSubdomains: true,
        reason: "malware",
      },
      reason: "denied by the git host rule for evil.example: malware",
    });
  });

  it("rejects a URL in another form with 400", async () => {
    const response = await app.request(
      `${RULES}/check`,
      adminRequest("POST", { url: "git://github.com/o/r.git" }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.message).toContain(
      'Invalid body field url: Invalid repository URL "git://github.com/o/r.git"',
    );
  });
});

describe("Repo routes with git host rules", () => {
  const repo = {
    name: "weather-station",
    repositoryUrl: "https://git.evil.example/o/weather.git",
    platform: "Gitlab",
  };

  it("rejects a Repo on a denied host with 422", async () => {
    const rule = await createRule({ host: "evil.example", kind: "deny", reason: "malware" });
    const before = await deniedCount("api");
    const response = await app.request("/api/v1/repos", adminRequest("POST", repo));
    expect(response.status).toBe(422);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("git_host_denied");
    expect(body.error.message).toBe(
      "Invalid body field repositoryUrl: the repository host git.evil.example is not accepted (denied by the git host rule for evil.example: malware); use a repository on an allowed host",
    );
    expect(body.error.details).toEqual({
      field: "repositoryUrl",
      host: "git.evil.example",
      ruleId: rule.id,
    });
    expect(await database.db.select().from(repos)).toEqual([]);
    expect(await deniedCount("api")).toBe(before + 1);
  });

  it("rejects a Repo off the allowlist with 422", async () => {
    await createRule({ host: "github.com", kind: "allow" });
    const response = await app.request("/api/v1/repos", adminRequest("POST", repo));
    expect(response.status).toBe(422);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.message).toContain("git.evil.example is not on this node's allowlist");

    const allowed = await app.request(
      "/api/v1/repos",
      adminRequest("POST", { ...repo, repositoryUrl: "https://github.com/o/weather.git" }),
    );
    expect(allowed.status).toBe(201);
  });

  it("rejects a change to a denied host with 422", async () => {
    const created = await app.request(
      "/api/v1/repos",
      adminRequest("POST", { ...repo, repositoryUrl: "https://github.com/o/weather.git" }),
    );
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    await createRule({ host: "evil.example", kind: "deny", reason: "malware" });

    const moved = await app.request(
      `/api/v1/repos/${id}`,
      adminRequest("PATCH", { repositoryUrl: repo.repositoryUrl }),
    );
    expect(moved.status).toBe(422);
    expect(((await moved.json()) as ErrorJson).error.code).toBe("git_host_denied");
    const renamed = await app.request(
      `/api/v1/repos/${id}`,
      adminRequest("PATCH", { summary: "ESP32 weather station" }),
    );
    expect(renamed.status).toBe(200);
    const [row] = await database.db.select().from(repos);
    expect(row?.repositoryUrl).toBe("https://github.com/o/weather.git");
  });
});
