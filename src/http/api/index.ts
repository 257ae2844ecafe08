/**
 * The REST API, mounted by the HTTP application under `/api/v1`. Every route is declared with zod
 * schemas, so `GET /api/v1/openapi.json` describes the whole API as OpenAPI 3.1.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { registerUserLedgerRoute } from "../../billing/ledger-routes.ts";
import { registerBillingRoutes } from "../../billing/routes.ts";
import { createUnitAccess } from "../../billing/unit-access.ts";
import { registerIngestSecurityScheme } from "../../metering/channels/ingest-auth.ts";
import { registerUsageIngestRoute } from "../../metering/channels/usage-route.ts";
import { registerErrorIngestRoute } from "../../metering/errors/ingest.ts";
import { createPaymentProviders } from "../../payments/providers.ts";
import { resumeUnitsOnCredit } from "../../payments/resume-after-credit.ts";
import { registerPaymentRoutes } from "../../payments/routes.ts";
import type { NodeServices } from "../../services.ts";
import { botUsernameLookup, registerTelegramRoutes } from "../../telegram/routes.ts";
import { requireAdminToken } from "../auth.ts";
import { registerBanRoutes } from "./bans.ts";
import { registerBridgeRoutes } from "./bridges.ts";
import { registerDiscoveryRoutes } from "./discovery.ts";
import { handleApiError, validationHook } from "./failures.ts";
import { registerGitHostRoutes } from "./git-hosts.ts";
import { registerGradingRoutes } from "./grading.ts";
import { registerLoadReportRoutes } from "./load-reports.ts";
import { registerMeteringRoutes } from "./metering.ts";
import { registerPeerRoutes } from "./peers.ts";
import { registerPolicyRoutes } from "./policy.ts";
import { registerRepoRoutes } from "./repos.ts";
import { ADMIN_SCHEME } from "./routing.ts";
import { registerUnitRoutes } from "./units.ts";

/** Path of the OpenAPI document, relative to the API's mount point. */
export const OPENAPI_PATH = "/openapi.json";

export function createApiRoutes(services: NodeServices): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.onError(handleApiError);

  app.openAPIRegistry.registerComponent("securitySchemes", ADMIN_SCHEME, {
    type: "http",
    scheme: "bearer",
    description:
      "The node's admin token (PU_NODE_ADMIN_TOKEN, or the generated one in the data directory)",
  });

  const admin = requireAdminToken(services.adminToken);
  registerDiscoveryRoutes(app, services, admin);
  registerRepoRoutes(app, services, admin);
  registerUnitRoutes(app, services, admin);
  registerPeerRoutes(app, services, admin);
  registerMeteringRoutes(app, services.timeSeries, admin);
  registerPolicyRoutes(app, services, admin);
  registerBanRoutes(app, services, admin);
  registerGitHostRoutes(app, services, admin);
  registerBridgeRoutes(app, services, admin);
  const unitAccess = createUnitAccess(services.config);
  registerPaymentRoutes(app, {
    db: services.db,
    providers: createPaymentProviders(services.config, services.db),
    admin,
    onCredit: resumeUnitsOnCredit({ db: services.db, access: unitAccess }),
  });
  registerTelegramRoutes(app, {
    db: services.db,
    admin,
    botUsername: botUsernameLookup(services.config),
  });
  registerGradingRoutes(app, services, admin);
  registerLoadReportRoutes(app, services, admin);
  registerBillingRoutes(
    app,
    {
      db: services.db,
      config: services.config,
      store: services.timeSeries,
      access: unitAccess,
    },
    admin,
  );
  registerUserLedgerRoute(app, { db: services.db, admin });

  registerIngestSecurityScheme(app);
  const ingestToken = services.config.ingestToken;
  registerErrorIngestRoute(app, { ingestToken, counter: services.errorCounter });
  registerUsageIngestRoute(app, { db: services.db, ingestToken });

  app.doc31(OPENAPI_PATH, {
    openapi: "3.1.0",
    info: {
      title: "Pepeunit Node API",
      version: "1",
      description:
        "Catalogue, search and federation API of a Pepeunit Node. Errors share one shape: " +
        '`{"error": {"code", "message", "details"}}`.',
    },
    servers: [{ url: new URL("/api/v1", services.config.origin).href }],
  });
  return app;
}
