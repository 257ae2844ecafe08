/** In-process nodes for integration tests: real HTTP on loopback, one test database each. */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config.ts";
import { type RunningNode, startNode } from "../src/server.ts";
import { findFreePort } from "./global-setup.ts";
import { createTestDatabase, dropDatabase } from "./postgres.ts";

export interface TestNode {
  node: RunningNode;
  origin: string;
  adminToken: string;
  /** Stops the node and drops its database. */
  close(): Promise<void>;
}

export async function startTestNode(
  adminUrl: string,
  name: string,
  env: Record<string, string> = {},
): Promise<TestNode> {
  const database = await createTestDatabase(adminUrl, `node_${name}`);
  // The node opens its own pool; this one is only for creating the database.
  await database.pool.end();
  const dataDir = await mkdtemp(path.join(tmpdir(), `pepeunit-node-${name}-`));
  const port = await findFreePort();
  const origin = `http://127.0.0.1:${port}`;
  const adminToken = randomBytes(32).toString("hex");
  const config = loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_LISTEN_HOST: "127.0.0.1",
    PU_NODE_PORT: String(port),
    PU_NODE_ORIGIN: origin,
    PU_NODE_PEPEUNIT_DOMAIN: `${name}.pepeunit.test`,
    PU_NODE_DATA_DIR: dataDir,
    PU_NODE_DATABASE_URL: database.url,
    PU_NODE_ADMIN_TOKEN: adminToken,
    PU_NODE_ALLOW_PRIVATE_ADDRESS: "true",
    PU_NODE_QUEUE_POLL_INTERVAL_MS: "100",
    PU_NODE_EMBEDDED_MQTT_PORT: "0",
    ...env,
  });
  const node = await startNode(config);
  return {
    node,
    origin,
    adminToken,
    close: async () => {
      await node.stop();
      await dropDatabase(adminUrl, database.name);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
