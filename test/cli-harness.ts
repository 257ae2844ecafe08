/** Helpers of the admin CLI tests: running the CLI in process and serving the REST API. */
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { inject } from "vitest";
import { runAdminCli } from "../src/cli/run.ts";
import { createTestApi, FakeFederationPort } from "../src/http/api/test-app.ts";
import { createTestDatabase, type TestDatabase } from "./postgres.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the admin CLI in this process with `env` and `cwd`, and returns its exit status and output. */
export async function runCli(
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; stdin?: string },
): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const code = await runAdminCli(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    env: options.env,
    cwd: options.cwd,
    readStdin: async () => options.stdin ?? "",
  });
  return { code, stdout, stderr };
}

export interface CliTestApi {
  database: TestDatabase;
  nodeUrl: string;
  /** Closes the server and drops the database. */
  stop(): Promise<void>;
}

/** Serves the REST API of a fresh test database on 127.0.0.1, for the CLI to call. */
export async function startCliTestApi(label: string): Promise<CliTestApi> {
  const database = await createTestDatabase(inject("postgresAdminUrl"), label);
  const app = createTestApi(database, new FakeFederationPort());
  const server = await new Promise<ServerType>((resolve) => {
    const created = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () =>
      resolve(created),
    );
  });
  return {
    database,
    nodeUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await database.drop();
    },
  };
}
