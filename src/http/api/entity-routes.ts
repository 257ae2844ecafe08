/**
 * Admin routes that the Repo and Unit APIs declare the same way: read one by id and delete one
 * by id. Each entity passes its path, its OpenAPI texts and its catalogue service.
 */
import type { OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { CatalogueResult } from "../../catalogue/validation.ts";
import { notFound, unwrapResult } from "./failures.ts";
import { adminRoute, errorResponses, jsonResponse } from "./routing.ts";
import { IdParamsSchema } from "./schemas.ts";

/** OpenAPI texts of one route. */
export interface RouteText {
  path: string;
  tags: string[];
  summary: string;
}

/** Registers `GET {path}`, which returns the entity with the id in the path, or 404. */
export function registerGetRoute<S extends z.ZodType, Row>(
  app: OpenAPIHono,
  admin: MiddlewareHandler,
  route: RouteText & {
    entity: "repo" | "unit";
    schema: S;
    /** Description of the 200 response. */
    description: string;
    load: (id: string) => Promise<Row | null>;
    toJson: (row: Row) => z.infer<S>;
  },
): void {
  const { entity, schema, description, load, toJson, ...text } = route;
  app.openapi(
    adminRoute(admin, {
      method: "get",
      ...text,
      request: { params: IdParamsSchema },
      responses: {
        200: jsonResponse(schema, description),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const row = await load(id);
      if (!row) throw notFound(entity, id);
      return c.json(toJson(row), 200);
    },
  );
}

/** Registers `DELETE {path}`, which returns 204, or the failure of `remove` as an error. */
export function registerDeleteRoute(
  app: OpenAPIHono,
  admin: MiddlewareHandler,
  route: RouteText & { remove: (id: string) => Promise<CatalogueResult<unknown>> },
): void {
  const { remove, ...text } = route;
  app.openapi(
    adminRoute(admin, {
      method: "delete",
      ...text,
      request: { params: IdParamsSchema },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses(400, 401, 403, 404, 409),
      },
    }),
    async (c) => {
      unwrapResult(await remove(c.req.valid("param").id));
      return c.body(null, 204);
    },
  );
}
