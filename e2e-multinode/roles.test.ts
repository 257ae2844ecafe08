/**
 * One node split into a web process and a worker process on the same database: the web
 * process answers HTTP and the Follow, the worker delivers the Accept and publishes Repos.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { dropDatabase } from "../test/postgres.ts";
import {
  type Cluster,
  createNodeDatabase,
  eventually,
  findFreePort,
  HarnessNode,
  startCluster,
} from "./harness.ts";

let cluster: Cluster;
let follower: HarnessNode;
let web: HarnessNode;
let worker: HarnessNode;
let databaseName: string;
let scratch: string;

beforeAll(async () => {
  const adminUrl = inject("postgresAdminUrl");
  cluster = await startCluster(adminUrl, ["f"]);
  follower = cluster.nodes[0] as HarnessNode;

  scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-roles-"));
  const database = await createNodeDatabase(adminUrl, "split");
  databaseName = database.databaseName;
  const port = await findFreePort();
  const shared = { port, ...database, dataDir: scratch };
  web = new HarnessNode({ name: "split", ...shared, extraEnv: { PU_NODE_ROLE: "web" } });
  worker = new HarnessNode({
    name: "split",
    ...shared,
    extraEnv: { PU_NODE_ROLE: "worker", PU_NODE_ADMIN_TOKEN: web.adminToken },
  });
  // The web process migrates the database; start the worker after it.
  await web.start();
  await worker.start();
}, 120_000);

afterEach((context) => {
  if (context.task.result?.state !== "fail") return;
  for (const node of [follower, web, worker]) {
    console.error(
      `--- last log lines of ${node?.name} (${node?.env.PU_NODE_ROLE}) ---\n${node?.tail(60)}`,
    );
  }
});

afterAll(async () => {
  await web?.stop();
  await worker?.stop();
  await cluster?.stop();
  await dropDatabase(inject("postgresAdminUrl"), databaseName);
  await rm(scratch, { recursive: true, force: true });
});

describe("web and worker roles", () => {
  it("serve one node together", async () => {
    const follow = await follower.api("POST", "/instances/follow", { target: web.origin });
    expect(follow.status, JSON.stringify(follow.body)).toBeLessThan(300);
    await eventually("the worker delivers the Accept", async () => {
      const rows = await follower.query<{ state: string }>("select state from outbound_follows");
      return rows[0]?.state === "accepted" ? true : undefined;
    });

    const created = await web.api("POST", "/repos", {
      name: "split-roles",
      repositoryUrl: "https://gitlab.com/example/split-roles.git",
      platform: "Gitlab",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await eventually("the follower finds the Repo", async () => {
      const response = await follower.api<{ items: { name: string }[] }>(
        "GET",
        "/search/repos?q=split-roles",
      );
      return response.body.items.find((item) => item.name === "split-roles");
    });
  });

  it("keeps changes while the worker is down", async () => {
    await worker.stop();
    const created = await web.api("POST", "/repos", {
      name: "queued-repo",
      repositoryUrl: "https://gitlab.com/example/queued-repo.git",
      platform: "Gitlab",
    });
    expect(created.status).toBe(201);
    const pending = await web.query<{ n: number }>(
      "select count(*)::int as n from catalogue_changes",
    );
    expect(pending[0]?.n).toBeGreaterThan(0);

    await worker.start();
    await eventually("the follower finds the queued Repo", async () => {
      const response = await follower.api<{ items: { name: string }[] }>(
        "GET",
        "/search/repos?q=queued-repo",
      );
      return response.body.items.find((item) => item.name === "queued-repo");
    });
  }, 60_000);
});
