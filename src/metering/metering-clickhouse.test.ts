/**
 * The tap through a whole node into the ClickHouse store, with the store down for a while:
 * every message counted before, during and after the outage is stored exactly once.
 */
import { createClient } from "@clickhouse/client";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  createTestClickHouseDatabase,
  hasClickHouseBinary,
  startTestClickHouse,
  type TestClickHouseServer,
} from "../../test/clickhouse.ts";
import { findFreePort } from "../../test/global-setup.ts";
import { startTestNode, type TestNode } from "../../test/nodes.ts";
import { createRepo } from "../catalogue/repos.ts";
import { createUnit } from "../catalogue/units.ts";

const available = await hasClickHouseBinary();

let server: TestClickHouseServer;
let node: TestNode;
let databaseUrl: string;

async function storedMessages(): Promise<number> {
  const client = createClient({ url: databaseUrl });
  try {
    const result = await client.query({
      query: "SELECT sum(messages) AS total FROM topic_counter_minutes FINAL",
      format: "JSONEachRow",
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    const [row] = (await result.json()) as { total: number }[];
    return Number(row?.total ?? 0);
  } finally {
    await client.close();
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`Timed out waiting for ${what} (last error: ${String(lastError)})`);
}

describe.skipIf(!available)(
  "metering into ClickHouse (skipped only when /usr/sbin/clickhouse-server is missing)",
  () => {
    beforeAll(async () => {
      server = await startTestClickHouse(await findFreePort(), await findFreePort());
      databaseUrl = (await createTestClickHouseDatabase(server.url, "metering")).url;
      node = await startTestNode(inject("postgresAdminUrl"), "metering-ch", {
        PU_NODE_CLICKHOUSE_URL: databaseUrl,
        PU_NODE_TAP_FLUSH_INTERVAL_MS: "200",
      });
    }, 90_000);

    afterAll(async () => {
      await node?.close();
      await server?.stop();
    });

    it("loses no counted message while the store is down", async () => {
      const { db, config, timeSeries } = node.node.services;
      const repo = await createRepo(db, {
        name: "ch-repo",
        repositoryUrl: "https://github.com/example/ch-repo.git",
        platform: "Github",
      });
      if (!repo.ok) throw new Error(JSON.stringify(repo.failure));
      const unit = await createUnit(db, {
        repoId: repo.value.id,
        name: "ch-unit",
        nodes: [{ type: "Output", topicName: "level/pepeunit" }],
      });
      if (!unit.ok) throw new Error(JSON.stringify(unit.failure));
      const unitNodeId = unit.value.nodes[0]?.id;
      const brokerUrl = node.node.brokerUrl;
      if (!unitNodeId || !brokerUrl) throw new Error("no UnitNode or no tap");

      const topic = `${config.pepeunitDomain}/${unitNodeId}/pepeunit`;
      const client = await mqtt.connectAsync(brokerUrl.href);
      const publish = async (count: number) => {
        for (let index = 0; index < count; index++) {
          await client.publishAsync(topic, String(index), { qos: 1 });
        }
      };

      await publish(37);
      // A topic whose first level is not a domain, counted under the domain "".
      for (let index = 0; index < 3; index++) {
        await client.publishAsync(`Bad_Domain/${unitNodeId}/pepeunit`, "x", { qos: 1 });
      }
      await waitFor("40 stored messages", async () =>
        (await storedMessages()) === 40 ? true : undefined,
      );

      await server.pause();
      await publish(60);
      // Let the tap try, and fail, to flush while ClickHouse is down.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await server.resume();
      await client.endAsync();

      await waitFor("100 stored messages", async () =>
        (await storedMessages()) === 100 ? true : undefined,
      );
      // The tap retries with the same batch id, so no message is stored twice.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await storedMessages()).toBe(100);

      // A clock one minute ahead makes the current minute part of the load window.
      const ahead = new Date(Date.now() + 60_000);
      const units = await timeSeries.loadReport("unit", ahead);
      expect(units.figures.find((figure) => figure.key === unit.value.id)?.messages[3]).toBe(97);
      const repos = await timeSeries.loadReport("repo", ahead);
      expect(repos.figures.find((figure) => figure.key === repo.value.id)?.messages[3]).toBe(97);
      const domains = await timeSeries.loadReport("domain", ahead);
      expect(
        domains.figures.find((figure) => figure.key === config.pepeunitDomain)?.messages[3],
      ).toBe(97);
      expect(domains.figures.find((figure) => figure.key === "")?.messages[3]).toBe(3);
    }, 120_000);
  },
);
