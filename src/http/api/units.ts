/** Admin routes for local Units and their nodes: list, read, create, update, delete. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
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
    createRoute({
      method: "get",
      path: "/units",
      tags: ["Units"],
      summary: "List local Units with their nodes, by name",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { query: UnitListQuerySchema },
      responses: {
        200: jsonResponse(pageOf(UnitSchema, "UnitPage"), "A page of Units"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const { limit, cursor, repoId } = c.req.valid("query");
      const rows = await listUnits(db, {
        limit: limit + 1,
        after: decodePageCursor(cursor),
        repoId,
      });
      const page = toPage(rows, limit, (unit) => unit.name);
      setNextLink(c, page.next);
      return c.json({ items: page.rows.map(unitJson), next: page.next }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/units",
      tags: ["Units"],
      summary: "Create a Unit of a local Repo, with its nodes",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { body: jsonBody(UnitCreateSchema) },
      responses: {
        201: jsonResponse(UnitSchema, "The created Unit"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const result = await createUnit(db, c.req.valid("json"));
      if (!result.ok) throw failureToHttpError(result.failure);
      c.header("Location", `${new URL(c.req.url).pathname}/${result.value.id}`);
      return c.json(unitJson(result.value), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/units/{id}",
      tags: ["Units"],
      summary: "Read a Unit with its nodes",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(UnitSchema, "The Unit"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const unit = await getUnit(db, id);
      if (!unit) throw new HttpError(404, "unit_not_found", `Unit ${id} not found`);
      return c.json(unitJson(unit), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/units/{id}",
      tags: ["Units"],
      summary: "Update a Unit; `nodes`, when given, replaces the node list",
      security: ADMIN_SECURITY,
      middleware: [admin] as const,
      request: { params: IdParamsSchema, body: jsonBody(UnitUpdateSchema) },
      responses: {
        200: jsonResponse(UnitSchema, "The updated Unit"),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const result = await updateUnit(db, id, c.req.valid("json"));
      if (!result.ok) throw failureToHttpError(result.failure);
      return c.json(unitJson(result.value), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/units/{id}",
      tags: ["Units"],
      summary: "Delete a Unit with its nodes",
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
      const result = await deleteUnit(db, id);
      if (!result.ok) throw failureToHttpError(result.failure);
      return c.body(null, 204);
    },
  );
}
