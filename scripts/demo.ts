/**
 * `npm run demo`: three nodes (a, b, c) on one machine with sample Repos, so a newcomer sees
 * federation work. Node b follows a and c; c follows a. Everything runs on loopback with an
 * embedded PostgreSQL under ./data/demo; Ctrl+C stops it all.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { eventually, HarnessNode } from "../e2e-multinode/harness.ts";
import { ensureDatabase, startEmbeddedPostgres } from "../src/db/embedded.ts";

const DEMO_DIR = path.resolve("data/demo");

const SAMPLE_REPOS: Record<string, { name: string; summary: string; unit: string }[]> = {
  a: [
    {
      name: "weather-station",
      summary: "ESP32 weather station with a BME280 sensor",
      unit: "roof-weather",
    },
    {
      name: "greenhouse-fan",
      summary: "Fan controller driven by temperature",
      unit: "greenhouse-1",
    },
  ],
  b: [{ name: "door-lock", summary: "Smart door lock on ESP8266", unit: "front-door" }],
  c: [
    {
      name: "soil-probe",
      summary: "Soil moisture probe for Raspberry Pi Pico W",
      unit: "garden-bed-3",
    },
  ],
};

/** Reads a port from the environment; the demo is a script, so it reads its own two settings. */
function portSetting(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65533) {
    throw new Error(`${name}: expected a port from 1 to 65533, got ${JSON.stringify(text)}`);
  }
  return port;
}

function say(message: string): void {
  process.stdout.write(`${message}\n`);
}

async function main(): Promise<void> {
  await mkdir(DEMO_DIR, { recursive: true });
  // Fixed ports: each node's origin is stored in the databases under ./data/demo, so a second
  // run must reuse the same ones.
  const postgresPort = portSetting("PU_NODE_DEMO_POSTGRES_PORT", 5440);
  const basePort = portSetting("PU_NODE_DEMO_BASE_PORT", 8081);
  say(`Starting embedded PostgreSQL on 127.0.0.1:${postgresPort} in ${DEMO_DIR}/postgres`);
  const postgres = await startEmbeddedPostgres({
    directory: path.join(DEMO_DIR, "postgres"),
    port: postgresPort,
    databaseName: "postgres",
  });

  const nodes: HarnessNode[] = [];
  const stopAll = async () => {
    say("Stopping the three nodes and PostgreSQL");
    await Promise.all(nodes.map((node) => node.stop()));
    await postgres.stop();
    say("Stopped");
  };
  process.once("SIGINT", () => void stopAll().then(() => process.exit(0)));
  process.once("SIGTERM", () => void stopAll().then(() => process.exit(0)));

  try {
    for (const [index, name] of ["a", "b", "c"].entries()) {
      const databaseName = `demo_${name}`;
      await ensureDatabase(postgres.adminUrl, databaseName);
      const url = new URL(postgres.adminUrl);
      url.pathname = `/${databaseName}`;
      const node = new HarnessNode({
        name,
        port: basePort + index,
        databaseUrl: url.href,
        databaseName,
        dataDir: path.join(DEMO_DIR, name),
        extraEnv: { PU_NODE_ENV: "development", PU_NODE_LOG_FORMAT: "text" },
      });
      nodes.push(node);
    }
    await Promise.all(nodes.map((node) => node.start()));
    for (const node of nodes) say(`Node ${node.name} is up at ${node.origin}`);

    for (const node of nodes) {
      for (const sample of SAMPLE_REPOS[node.name] ?? []) {
        const existing = await node.api<{ items: { name: string }[] }>("GET", "/repos?limit=100");
        if (existing.body.items?.some((item) => item.name === sample.name)) continue;
        const repo = await node.api<{ id: string }>("POST", "/repos", {
          name: sample.name,
          summary: sample.summary,
          repositoryUrl: `https://github.com/pepeunit-demo/${sample.name}.git`,
          platform: "Github",
          defaultBranch: "main",
        });
        if (repo.status !== 201)
          throw new Error(`Creating ${sample.name} failed: ${JSON.stringify(repo.body)}`);
        await node.api("POST", "/units", {
          repoId: repo.body.id,
          name: sample.unit,
          nodes: [
            { type: "Output", topicName: "state/pepeunit" },
            { type: "Input", topicName: "command" },
          ],
        });
      }
    }

    const [a, b, c] = nodes as [HarnessNode, HarnessNode, HarnessNode];
    for (const [follower, target] of [
      [b, a],
      [b, c],
      [c, a],
    ] as const) {
      const response = await follower.api("POST", "/instances/follow", { target: target.origin });
      say(`Node ${follower.name} follows node ${target.name}: HTTP ${response.status}`);
    }

    const hits = await eventually(
      "node b to see the Repos of a and c",
      async () => {
        const page = await b.api<{ items: { name: string; origin: { host: string } }[] }>(
          "GET",
          "/search/repos?limit=20",
        );
        const remote = page.body.items.filter(
          (item) => item.origin.host !== new URL(b.origin).host,
        );
        return remote.length >= 3 ? page.body.items : undefined;
      },
      60_000,
    );

    say("\nNode b's federated search now returns:");
    for (const hit of hits) say(`  ${hit.name.padEnd(18)} from ${hit.origin.host}`);
    say(`
Try it yourself:
  curl '${b.origin}/api/v1/search/repos?q=weather'
  curl '${b.origin}/api/v1/search/repos?unit=greenhouse'
  curl -H 'Accept: application/activity+json' ${a.origin}/ap/actors/instance
  curl ${a.origin}/nodeinfo/2.1
Admin API token of node a: ${a.adminToken}
Press Ctrl+C to stop the three nodes.`);
    while (true) await sleep(60_000);
  } catch (error) {
    for (const node of nodes) say(`--- node ${node.name} ---\n${node.tail(30)}`);
    await stopAll();
    throw error;
  }
}

await main();
