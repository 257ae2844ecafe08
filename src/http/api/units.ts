/** Admin routes for local Units and their nodes: list, read, create, update, delete. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import {
  createUnit,
  deleteUnit,
  getUnit,
  listUnits,
  type UnitWithNodes,
  updateUnit,
} from "../../catalogue/units.ts";
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
  pageOf,
  UnitCreateSchema,
  UnitListQuerySchema,
  UnitSchema,
  UnitUpdateSchema,
} from "./schemas.ts";

function unitJson(unit: UnitWithNodes) {
  return {
    id: unit.id,
    repoId: unit.repoId,
    name: unit.name,
    visibility: unit.visibility,
    source: unit.source,
    nodes: unit.nodes.map((node) => ({
      id: node.id,
      type: node.type,
      topicName: node.topicName,
      visibility: node.visibility,
    })),
    createdAt: unit.createdAt.toISOString(),
    updatedAt: unit.updatedAt.toISOString(),
  };
}

export function registerUnitRoutes(
  app: OpenAPIHono,
  services: NodeServices,
  admin: MiddlewareHandler,
): void {
  const { db } = services;

  app.openapi(
    adminRoute(admin, {
      method: "get",
      path: "/units",
      tags: ["Units"],
      summary: "List local Units with their nodes, by name",
      request: { query: UnitListQuerySchema },
      responses: {
        200: jsonResponse(pageOf(UnitSchema, "UnitPage"), "A page of Units"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { repoId, ...query } = c.req.valid("query");
      const body = await loadPage(c, query, {
        load: (page) => listUnits(db, { ...page, repoId }),
        keyOf: (unit) => unit.name,
        toItem: unitJson,
      });
      return c.json(body, 200);
    },
  );

  app.openapi(
    adminRoute(admin, {
      method: "post",
      path: "/units",
      tags: ["Units"],
      summary: "Create a Unit of a local Repo, with its nodes",
      request: { body: jsonBody(UnitCreateSchema) },
      responses: {
        201: jsonResponse(UnitSchema, "The created Unit"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const unit = unwrapResult(await createUnit(db, c.req.valid("json")));
      setCreatedLocation(c, unit.id);
      return c.json(unitJson(unit), 201);
    },
  );

  registerGetRoute(app, admin, {
    path: "/units/{id}",
    tags: ["Units"],
    summary: "Read a Unit with its nodes",
    entity: "unit",
    schema: UnitSchema,
    description: "The Unit",
    load: (id) => getUnit(db, id),
    toJson: unitJson,
  });

  app.openapi(
    adminRoute(admin, {
      method: "patch",
      path: "/units/{id}",
      tags: ["Units"],
      summary: "Update a Unit; `nodes`, when given, replaces the node list",
      request: { params: IdParamsSchema, body: jsonBody(UnitUpdateSchema) },
      responses: {
        200: jsonResponse(UnitSchema, "The updated Unit"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const unit = unwrapResult(await updateUnit(db, id, c.req.valid("json")));
      return c.json(unitJson(unit), 200);
    },
  );

  registerDeleteRoute(app, admin, {
    path: "/units/{id}",
    tags: ["Units"],
    summary: "Delete a Unit with its nodes",
    remove: (id) => deleteUnit(db, id),
  });
}
