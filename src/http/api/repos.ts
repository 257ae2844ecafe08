/** Admin routes for local Repos: list, read, create, update, delete. */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
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
import { registerDeleteRoute, registerGetRoute } from "./entity-routes.ts";
import { unwrapResult } from "./failures.ts";
import {
  adminRoute,
  errorResponses,
  jsonBody,
  jsonResponse,
  loadPage,
  setCreatedLocation,
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

export function registerRepoRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db, config } = services;

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/repos",
      tags: ["Repos"],
      summary: "List local Repos of every visibility, by name",
      request: { query: PageQuerySchema },
      responses: {
        200: jsonResponse(pageOf(RepoSchema, "RepoPage"), "A page of Repos"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const body = await loadPage(c, c.req.valid("query"), {
        load: (page) => listRepos(db, page),
        keyOf: (repo) => repo.name,
        toItem: (repo) => repoJson(config.origin, repo),
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/repos",
      tags: ["Repos"],
      summary: "Create a local Repo",
      request: { body: jsonBody(RepoCreateSchema) },
      responses: {
        201: jsonResponse(RepoSchema, "The created Repo"),
        ...errorResponses(400, 401, 403, 409, 422),
      },
    }),
    async (c) => {
      const repo = unwrapResult(await createRepo(db, c.req.valid("json")));
      setCreatedLocation(c, repo.id);
      return c.json(repoJson(config.origin, repo), 201);
    },
  );

  registerGetRoute(app, admin, {
    path: "/repos/{id}",
    tags: ["Repos"],
    summary: "Read a local Repo",
    entity: "repo",
    schema: RepoSchema,
    description: "The Repo",
    load: (id) => getRepo(db, id),
    toJson: (repo) => repoJson(config.origin, repo),
  });

  app.openapi(
    adminRoute(admin, {
      method: "patch",
      path: "/repos/{id}",
      tags: ["Repos"],
      summary: "Update a local Repo; a stricter visibility also tightens its Units and nodes",
      request: { params: IdParamsSchema, body: jsonBody(RepoUpdateSchema) },
      responses: {
        200: jsonResponse(RepoUpdateResultSchema, "The updated Repo"),
        ...errorResponses(400, 401, 403, 404, 409, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const { repo, tightenedUnitIds } = unwrapResult(
        await updateRepo(db, id, c.req.valid("json")),
      );
      return c.json({ ...repoJson(config.origin, repo), tightenedUnitIds }, 200);
    },
  );

  registerDeleteRoute(app, admin, {
    path: "/repos/{id}",
    tags: ["Repos"],
    summary: "Delete a local Repo with its Units",
    remove: (id) => deleteRepo(db, id),
  });
}
