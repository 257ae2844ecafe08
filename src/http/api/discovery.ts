/** Routes that read the catalogue: the public Repo search and the admin view of federated Repos. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  type FederatedCatalogueEntry,
  listFederatedRepos,
  searchRepos,
} from "../../catalogue/search.ts";
import type { NodeServices } from "../../services.ts";
import { unwrapResult } from "./failures.ts";
import { adminRoute, errorResponses, jsonResponse, loadPage, setNextLink } from "./routing.ts";
import {
  CatalogueQuerySchema,
  FederatedRepoSchema,
  pageOf,
  SearchHitSchema,
  SearchQuerySchema,
} from "./schemas.ts";

function isoOrNull(value: Date | null): string | null {
  return value === null ? null : value.toISOString();
}

function federatedRepoJson({ repo, units }: FederatedCatalogueEntry) {
  return {
    iri: repo.iri,
    pepeunitId: repo.pepeunitId,
    originHost: repo.originHost,
    name: repo.name,
    summary: repo.summary,
    repositoryUrl: repo.repositoryUrl,
    platform: repo.platform,
    defaultBranch: repo.defaultBranch,
    isCompilable: repo.isCompilable,
    versions: repo.versions,
    publishedAt: isoOrNull(repo.publishedAt),
    remoteUpdatedAt: isoOrNull(repo.remoteUpdatedAt),
    receivedAt: repo.receivedAt.toISOString(),
    units: units.map((unit) => ({
      iri: unit.iri,
      pepeunitId: unit.pepeunitId,
      name: unit.name,
      nodes: unit.nodes,
      remoteUpdatedAt: isoOrNull(unit.remoteUpdatedAt),
      receivedAt: unit.receivedAt.toISOString(),
    })),
  };
}

export function registerDiscoveryRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db, config } = services;

  app.openapi(
    createRoute({
      method: "get",
      path: "/search/repos",
      tags: ["Search"],
      summary: "Search local Public Repos and the Repos of followed instances",
      description:
        "Ranked by full-text relevance (name above summary above repository URL), then recency. " +
        "Without `q`, lists by recency. Page with the `next` cursor or the `Link` header.",
      request: { query: SearchQuerySchema },
      responses: {
        200: jsonResponse(pageOf(SearchHitSchema, "RepoSearchPage"), "A page of matching Repos"),
        ...errorResponses(400),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const result = await searchRepos(db, config.origin, {
        query: query.q,
        platform: query.platform,
        compilable: query.compilable,
        origin: query.origin,
        unit: query.unit,
        limit: query.limit,
        cursor: query.cursor,
      });
      const page = unwrapResult(result, "query");
      setNextLink(c, page.next);
      return c.json(page, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/catalogue",
      tags: ["Federation"],
      summary:
        "List the federated catalogue: Repos received from other instances, with their Units",
      request: { query: CatalogueQuerySchema },
      responses: {
        200: jsonResponse(
          pageOf(FederatedRepoSchema, "FederatedRepoPage"),
          "A page of federated Repos",
        ),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { origin, ...query } = c.req.valid("query");
      const body = await loadPage(c, query, {
        load: (page) => listFederatedRepos(db, { ...page, originHost: origin }),
        keyOf: (entry) => entry.repo.iri,
        toItem: federatedRepoJson,
      });
      return c.json(body, 200);
    },
  );
}
