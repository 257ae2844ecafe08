/** Admin routes for local Repos: list, read, create, update, delete. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  createRepo,
  deleteRepo,
  getRepo,
  listRepos,
  type RepoRecord,
  updateRepo,
} from "../../catalogue/repos.ts";
import { localRepoIri } from "../../catalogue/search.ts";
import type { NodeServices } from "../../services.ts";
import { HttpError } from "../errors.ts";
import { failureToHttpError } from "./failures.ts";
import {
  ADMIN_SECURITY,
  decodePageCursor,
  errorResponses,
  jsonBody,
  jsonResponse,
  setNextLink,
  toPage,
} from "./routing.ts";
import {
  IdParamsSchema,
  PageQuerySchema,
  pageOf,
  RepoCreateSchema,
  RepoSchema,
  RepoUpdateSchema,
} from "./schemas.ts";

const RepoUpdateResultSchema = RepoSchema.extend({
  tightenedUnitIds: z
    .array(z.string())
    .openapi({ description: "Units whose visibility the update tightened to the Repo's" }),
}).openapi("RepoUpdateResult");

function repoJson(origin: URL, repo: RepoRecord) {
  return {
    id: repo.id,
    iri: localRepoIri(origin, repo.id),
    name: repo.name,
    summary: repo.summary,
    repositoryUrl: repo.repositoryUrl,
    platform: repo.platform,
    defaultBranch: repo.defaultBranch,
    isCompilable: repo.isCompilable,
    visibility: repo.visibility,
    versions: repo.versions,
    source: repo.source,
    createdAt: repo.createdAt.toISOString(),
    updatedAt: repo.updatedAt.toISOString(),
  };
}

function repoNotFound(id: string): HttpError {
  return new HttpError(404, "repo_not_found", `Repo ${id} not found`);
}

export function registerRepoRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db, config } = services;

  app.openapi(
    createRoute({
      method: "get",
      path: "/repos",
      tags: ["Repos"],
      summary: "List local Repos of every visibility, by name",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { query: PageQuerySchema },
      responses: {
        200: jsonResponse(pageOf(RepoSchema, "RepoPage"), "A page of Repos"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const rows = await listRepos(db, { limit: limit + 1, after: decodePageCursor(cursor) });
      const page = toPage(rows, limit, (repo) => repo.name);
      setNextLink(c, page.next);
      return c.json(
        { items: page.rows.map((repo) => repoJson(config.origin, repo)), next: page.next },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/repos",
      tags: ["Repos"],
      summary: "Create a local Repo",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { body: jsonBody(RepoCreateSchema) },
      responses: {
        201: jsonResponse(RepoSchema, "The created Repo"),
        ...errorResponses(400, 401, 403, 409),
      },
    }),
    async (c) => {
      const result = await createRepo(db, c.req.valid("json"));
      if (!result.ok) throw failureToHttpError(result.failure);
      c.header("Location", `${new URL(c.req.url).pathname}/${result.value.id}`);
      return c.json(repoJson(config.origin, result.value), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/repos/{id}",
      tags: ["Repos"],
      summary: "Read a local Repo",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(RepoSchema, "The Repo"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const repo = await getRepo(db, id);
      if (!repo) throw repoNotFound(id);
      return c.json(repoJson(config.origin, repo), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/repos/{id}",
      tags: ["Repos"],
      summary: "Update a local Repo; a stricter visibility also tightens its Units and nodes",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { params: IdParamsSchema, body: jsonBody(RepoUpdateSchema) },
      responses: {
        200: jsonResponse(RepoUpdateResultSchema, "The updated Repo"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const result = await updateRepo(db, id, c.req.valid("json"));
      if (!result.ok) throw failureToHttpError(result.failure);
      const { repo, tightenedUnitIds } = result.value;
      return c.json({ ...repoJson(config.origin, repo), tightenedUnitIds }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/repos/{id}",
      tags: ["Repos"],
      summary: "Delete a local Repo with its Units",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { params: IdParamsSchema },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const result = await deleteRepo(db, id);
      if (!result.ok) throw failureToHttpError(result.failure);
      return c.body(null, 204);
    },
  );
}
