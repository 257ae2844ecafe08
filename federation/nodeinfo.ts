/**
 * NodeInfo 2.1 of the node. `metadata.pepeunit` describes this node to directories and peers:
 * its Pepeunit domain, the features it runs, its catalogue size and its latest graded status.
 */
import type { NodeInfo } from "@fedify/fedify";
import { count, eq } from "drizzle-orm";
import { loadBillingSettings } from "../src/billing/settings-store.ts";
import type { Config } from "../src/config.ts";
import type { Database } from "../src/db/client.ts";
import { repos, units, users } from "../src/db/schema/index.ts";
import { latestCompletedRun } from "../src/grading/run.ts";
import { publishedPriceParameters } from "../src/reports/price-parameters.ts";
import { NODE_VERSION } from "../src/version.ts";

/** Feature flags published in NodeInfo; a feature appears here when the node runs it. */
export const FEATURES = {
  federatedCatalogue: true,
  repoSearch: true,
  unitSearch: true,
  pepeunitImport: false,
  metering: true,
  billing: true,
  bridges: false,
} as const;

export async function buildNodeInfo(db: Database, config: Config): Promise<NodeInfo> {
  const [userCount] = await db.select({ total: count() }).from(users);
  const [repoCount] = await db
    .select({ total: count() })
    .from(repos)
    .where(eq(repos.visibility, "Public"));
  const [unitCount] = await db
    .select({ total: count() })
    .from(units)
    .where(eq(units.visibility, "Public"));
  const graded = await latestCompletedRun(db);
  const billing = await loadBillingSettings(db, config);
  return {
    software: {
      name: "pepeunit-node",
      version: NODE_VERSION,
      repository: new URL("https://github.com/w7a8n1y4a/pepeunit"),
    },
    protocols: ["activitypub"],
    openRegistrations: false,
    usage: {
      users: { total: userCount?.total ?? 0 },
      // Public Repos are what this node publishes; NodeInfo has no better field for them.
      localPosts: repoCount?.total ?? 0,
      localComments: 0,
    },
    metadata: {
      nodeName: config.nodeName,
      pepeunit: {
        domain: config.pepeunitDomain,
        features: {
          ...FEATURES,
          pepeunitImport: config.pepeunitDatabaseUrl !== undefined,
          // Other instances can ask for a bridge when this one publishes a broker for peers.
          bridges: config.bridgeBrokerUrl !== undefined,
        },
        publicRepos: repoCount?.total ?? 0,
        publicUnits: unitCount?.total ?? 0,
        // Null until the first hour is graded. docs/grading.md defines green, yellow and red.
        status:
          graded?.instanceStatus == null
            ? null
            : {
                instance: graded.instanceStatus,
                hour: graded.hour.toISOString(),
                capacityMps: config.grading.capacityMps,
              },
        // The monetisation parameters, so that people can compare instances; docs/billing.md.
        // They are the `parameters` of the next signed load report, built by the same function.
        // Token amounts are decimal strings, because they may exceed the safe integer range.
        monetisation: {
          ...publishedPriceParameters(billing, {
            capacityMps: config.grading.capacityMps,
            aggregationTopicBytes: config.loadReport.aggregationTopicBytes,
          }),
          regionPrices: Object.fromEntries(
            Object.entries(billing.settings.regionPrices).map(([region, price]) => [
              region,
              price.toString(),
            ]),
          ),
          instanceStatus: graded?.instanceStatus ?? null,
        },
      },
    },
  };
}
