import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../../test/postgres.ts";
import { adminRequest, createTestApi, FakeFederationPort } from "./test-app.ts";

let database: TestDatabase;
let app: Hono;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "api-catalogue");
  app = createTestApi(database, new FakeFederationPort());
});

afterAll(async () => {
  await database.drop();
});

interface ErrorJson {
  error: {
    code: string;
    message: string;
    details?: { issues?: Array<{ location: string; field: string; message: string }> };
  };
}

async function createRepo(name: string, extra: Record<string, unknown> = {}) {
  const response = await app.request(
    "/api/v1/repos",
    adminRequest("POST", {
      name,
      repositoryUrl: `https://github.com/example/${name}.git`,
      platform: "Github",
      ...extra,
    }),
  );
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string; iri: string; visibility: string };
}

describe("admin token", () => {
  it("answers 401 without a token", async () => {
    const response = await app.request("/api/v1/repos");
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await response.json()) as ErrorJson).error.code).toBe("unauthorized");
  });

  it("answers 403 with a wrong token", async () => {
    const response = await app.request("/api/v1/units", {
      headers: { authorization: "Bearer wrong-token" },
    });
    expect(response.status).toBe(403);
    expect(((await response.json()) as ErrorJson).error.code).toBe("forbidden");
  });

  it("checks the token before the body", async () => {
    const response = await app.request("/api/v1/repos", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(response.status).toBe(401);
  });
});

describe("Repo routes", () => {
  it("creates, reads, updates and deletes a Repo", async () => {
    const created = await createRepo("api-repo-1", { summary: "First" });
    expect(created.iri).toBe(`https://node.example.com/ap/actors/${created.id}`);

    const read = await app.request(`/api/v1/repos/${created.id}`, adminRequest("GET"));
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({
      name: "api-repo-1",
      summary: "First",
      source: "node",
    });

    const updated = await app.request(
      `/api/v1/repos/${created.id}`,
      adminRequest("PATCH", { summary: "Second", visibility: "Internal" }),
    );
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({
      summary: "Second",
      visibility: "Internal",
      tightenedUnitIds: [],
    });

    const deleted = await app.request(`/api/v1/repos/${created.id}`, adminRequest("DELETE"));
    expect(deleted.status).toBe(204);
    const missing = await app.request(`/api/v1/repos/${created.id}`, adminRequest("GET"));
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as ErrorJson).error.code).toBe("repo_not_found");
  });

  it("names each invalid field and its fix", async () => {
    const response = await app.request(
      "/api/v1/repos",
      adminRequest("POST", {
        name: "ab",
        repositoryUrl: "https://example.com/x",
        platform: "Bitbucket",
      }),
    );
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("invalid_request");
    const fields = body.error.details?.issues?.map((issue) => issue.field).sort();
    expect(fields).toEqual(["name", "platform", "repositoryUrl"]);
    const nameIssue = body.error.details?.issues?.find((issue) => issue.field === "name");
    expect(nameIssue?.location).toBe("body");
    expect(nameIssue?.message).toContain("4 to 20 characters");
    expect(body.error.message).toContain("body field");
  });

  it("reports missing required fields", async () => {
    const response = await app.request(
      "/api/v1/repos",
      adminRequest("POST", { name: "missing-url" }),
    );
    expect(response.status).toBe(400);
    const issues = ((await response.json()) as ErrorJson).error.details?.issues ?? [];
    expect(issues.find((issue) => issue.field === "repositoryUrl")?.message).toBe(
      "missing; this field is required",
    );
  });

  it("rejects unknown fields", async () => {
    const response = await app.request(
      "/api/v1/repos",
      adminRequest("POST", {
        name: "unknown-field",
        repositoryUrl: "https://github.com/example/unknown.git",
        platform: "Github",
        stars: 5,
      }),
    );
    expect(response.status).toBe(400);
    const issues = ((await response.json()) as ErrorJson).error.details?.issues ?? [];
    expect(issues).toEqual([
      { location: "body", field: "stars", message: "unknown field; remove it" },
    ]);
  });

  it("rejects unknown fields in PATCH", async () => {
    const created = await createRepo("patch-strict");
    const response = await app.request(
      `/api/v1/repos/${created.id}`,
      adminRequest("PATCH", { owner: "someone" }),
    );
    expect(response.status).toBe(400);
    const issues = ((await response.json()) as ErrorJson).error.details?.issues ?? [];
    expect(issues.map((issue) => issue.field)).toEqual(["owner"]);
  });

  it("answers 400 to malformed JSON", async () => {
    const response = await app.request("/api/v1/repos", {
      ...adminRequest("POST"),
      headers: { ...adminRequest("POST").headers, "content-type": "application/json" },
      body: '{"name": ',
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("malformed_json");
    expect(body.error.message).toContain("not valid JSON");
  });

  it("answers 415 to a body that is not JSON", async () => {
    const response = await app.request("/api/v1/repos", {
      ...adminRequest("POST"),
      headers: { ...adminRequest("POST").headers, "content-type": "text/plain" },
      body: "name=x",
    });
    expect(response.status).toBe(415);
    expect(((await response.json()) as ErrorJson).error.code).toBe("unsupported_media_type");
  });

  it("answers 400 to a malformed id", async () => {
    const response = await app.request("/api/v1/repos/not-a-uuid", adminRequest("GET"));
    expect(response.status).toBe(400);
    const issues = ((await response.json()) as ErrorJson).error.details?.issues ?? [];
    expect(issues[0]).toMatchObject({ location: "path", field: "id" });
  });

  it("answers 409 to a taken name", async () => {
    await createRepo("taken-repo");
    const response = await app.request(
      "/api/v1/repos",
      adminRequest("POST", {
        name: "taken-repo",
        repositoryUrl: "https://github.com/example/other.git",
        platform: "Github",
      }),
    );
    expect(response.status).toBe(409);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("name_taken");
    expect(body.error.message).toContain("taken-repo");
  });

  it("pages the Repo list with a cursor and a Link header", async () => {
    for (const name of ["page-a", "page-b", "page-c"]) await createRepo(name);
    const seen: string[] = [];
    let url: string | null = "/api/v1/repos?limit=2";
    while (url) {
      const response: Response = await app.request(url, adminRequest("GET"));
      expect(response.status).toBe(200);
      const body = (await response.json()) as {
        items: Array<{ name: string }>;
        next: string | null;
      };
      seen.push(...body.items.map((item) => item.name));
      const link = response.headers.get("link");
      if (body.next === null) {
        expect(link).toBeNull();
        url = null;
      } else {
        url = link?.match(/^<([^>]+)>; rel="next"$/)?.[1] ?? null;
        expect(url).toContain("cursor=");
      }
    }
    expect(seen).toEqual(expect.arrayContaining(["page-a", "page-b", "page-c"]));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("answers 400 to a broken cursor", async () => {
    const response = await app.request("/api/v1/repos?cursor=%21%21", adminRequest("GET"));
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorJson).error.details?.issues?.[0]?.field).toBe("cursor");
  });
});

describe("Unit routes", () => {
  it("creates a Unit with nodes and lists it by Repo", async () => {
    const repo = await createRepo("unit-host");
    const created = await app.request(
      "/api/v1/units",
      adminRequest("POST", {
        repoId: repo.id,
        name: "api-unit-1",
        nodes: [{ type: "Output", topicName: "temp/pepeunit" }],
      }),
    );
    expect(created.status).toBe(201);
    const unit = (await created.json()) as { id: string; nodes: Array<{ topicName: string }> };
    expect(created.headers.get("location")).toBe(`/api/v1/units/${unit.id}`);
    expect(unit.nodes.map((node) => node.topicName)).toEqual(["temp/pepeunit"]);

    const listed = await app.request(`/api/v1/units?repoId=${repo.id}`, adminRequest("GET"));
    const body = (await listed.json()) as { items: Array<{ id: string }> };
    expect(body.items.map((item) => item.id)).toEqual([unit.id]);
  });

  it("answers 409 when a Unit is more open than its Repo", async () => {
    const repo = await createRepo("private-host", { visibility: "Private" });
    const response = await app.request(
      "/api/v1/units",
      adminRequest("POST", { repoId: repo.id, name: "open-unit", visibility: "Public" }),
    );
    expect(response.status).toBe(409);
    const body = (await response.json()) as ErrorJson;
    expect(body.error.code).toBe("visibility_too_open");
    expect(body.error.message).toContain("Private");
  });

  it("answers 404 for a Unit of an unknown Repo", async () => {
    const response = await app.request(
      "/api/v1/units",
      adminRequest("POST", { repoId: "00000000-0000-4000-8000-00000000000a", name: "lost-unit" }),
    );
    expect(response.status).toBe(404);
    expect(((await response.json()) as ErrorJson).error.code).toBe("repo_not_found");
  });

  it("names the invalid node field", async () => {
    const repo = await createRepo("node-check");
    const response = await app.request(
      "/api/v1/units",
      adminRequest("POST", {
        repoId: repo.id,
        name: "node-check-unit",
        nodes: [
          { type: "Output", topicName: "ok" },
          { type: "Sideways", topicName: "bad topic" },
        ],
      }),
    );
    expect(response.status).toBe(400);
    const fields = ((await response.json()) as ErrorJson).error.details?.issues?.map(
      (issue) => issue.field,
    );
    expect(fields?.sort()).toEqual(["nodes[1].topicName", "nodes[1].type"]);
  });

  it("updates and deletes a Unit", async () => {
    const repo = await createRepo("unit-cycle");
    const created = await app.request(
      "/api/v1/units",
      adminRequest("POST", { repoId: repo.id, name: "cycle-unit" }),
    );
    const unit = (await created.json()) as { id: string };
    const updated = await app.request(
      `/api/v1/units/${unit.id}`,
      adminRequest("PATCH", {
        visibility: "Private",
        nodes: [{ type: "Input", topicName: "cmd" }],
      }),
    );
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({
      visibility: "Private",
      nodes: [{ type: "Input", topicName: "cmd", visibility: "Private" }],
    });
    expect((await app.request(`/api/v1/units/${unit.id}`, adminRequest("DELETE"))).status).toBe(
      204,
    );
    expect((await app.request(`/api/v1/units/${unit.id}`, adminRequest("GET"))).status).toBe(404);
    expect((await app.request(`/api/v1/units/${unit.id}`, adminRequest("DELETE"))).status).toBe(
      404,
    );
  });
});

describe("OpenAPI document", () => {
  it("lists every route of the API", async () => {
    const response = await app.request("/api/v1/openapi.json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      servers: Array<{ url: string }>;
    };
    expect(document.openapi).toBe("3.1.0");
    expect(document.servers[0]?.url).toBe("https://node.example.com/api/v1");

    const documented = Object.entries(document.paths)
      .flatMap(([path, operations]) =>
        Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    const mounted = [
      ...new Set(
        app.routes
          .filter((route) => route.method !== "ALL" && !route.path.endsWith("/openapi.json"))
          .map((route) => {
            const path = route.path.replace(/^\/api\/v1/, "").replace(/:(\w+)/g, "{$1}");
            return `${route.method} ${path}`;
          }),
      ),
    ].sort();
    expect(documented).toEqual(mounted);
    expect(documented).toEqual(
      expect.arrayContaining([
        "GET /search/repos",
        "GET /catalogue",
        "POST /instances/follow",
        "DELETE /instances/follow",
        "GET /peers",
        "POST /repos",
        "PATCH /units/{id}",
      ]),
    );
  });
});

interface UnitPageJson {
  items: Array<{ name: string }>;
  next: string | null;
}

const MISSING_ID = "00000000-0000-4000-8000-0000000000ff";

async function createUnit(repoId: string, name: string): Promise<string> {
  const response = await app.request("/api/v1/units", adminRequest("POST", { repoId, name }));
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

describe("read and delete by id", () => {
  const cases = [
    { path: "repos", code: "repo_not_found", label: "Repo" },
    { path: "units", code: "unit_not_found", label: "Unit" },
  ];

  for (const { path, code, label } of cases) {
    for (const method of ["GET", "DELETE"]) {
      it(`${method} /${path}/{id} returns 404 when missing`, async () => {
        const response = await app.request(`/api/v1/${path}/${MISSING_ID}`, adminRequest(method));
        expect(response.status).toBe(404);
        const body = (await response.json()) as ErrorJson;
        expect(body.error.code).toBe(code);
        expect(body.error.message).toBe(`${label} ${MISSING_ID} not found`);
      });
    }
  }

  it("DELETE /units/{id} removes the Unit", async () => {
    const repoId = (await createRepo("delete-host")).id;
    const id = await createUnit(repoId, "delete-me");

    const deleted = await app.request(`/api/v1/units/${id}`, adminRequest("DELETE"));
    expect(deleted.status).toBe(204);
    expect(await deleted.text()).toBe("");
    const read = await app.request(`/api/v1/units/${id}`, adminRequest("GET"));
    expect(read.status).toBe(404);
  });
});

describe("list paging with a filter", () => {
  it("keeps the repoId filter on every page", async () => {
    const repoId = (await createRepo("paged-host")).id;
    const otherRepoId = (await createRepo("other-host")).id;
    for (const name of ["paged-a", "paged-b", "paged-c"]) await createUnit(repoId, name);
    await createUnit(otherRepoId, "paged-bb");

    const names: string[] = [];
    let url: string | null = `/api/v1/units?repoId=${repoId}&limit=2`;
    while (url !== null) {
      const response = await app.request(url, adminRequest("GET"));
      expect(response.status).toBe(200);
      const body = (await response.json()) as UnitPageJson;
      names.push(...body.items.map((item) => item.name));
      const link = response.headers.get("link");
      if (body.next === null) {
        expect(link).toBeNull();
        url = null;
      } else {
        const match = /^<([^>]+)>; rel="next"$/.exec(link ?? "");
        expect(match?.[1]).toContain(`repoId=${repoId}`);
        url = match?.[1] ?? null;
      }
    }
    expect(names).toEqual(["paged-a", "paged-b", "paged-c"]);
  });
});
