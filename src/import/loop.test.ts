import pg from "pg";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import {
  createPepeunitSourceDatabase,
  type PepeunitSourceDatabase,
} from "../../test/fixtures/pepeunit/source-database.ts";
import { findFreePort } from "../../test/global-setup.ts";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { users } from "../db/schema/index.ts";
import { runPepeunitImportOnce, startPepeunitImportLoop } from "./loop.ts";
import type { ImportSummary } from "./summary.ts";

let node: TestDatabase;
let source: PepeunitSourceDatabase;

beforeEach(async () => {
  node = await createTestDatabase(inject("postgresAdminUrl"), "import_loop");
  source = await createPepeunitSourceDatabase(inject("postgresAdminUrl"));
});

afterEach(async () => {
  await node.drop();
  await source.drop();
});

describe("startPepeunitImportLoop", () => {
  it("runs until the signal aborts", async () => {
    const controller = new AbortController();
    const summaries: ImportSummary[] = [];

    await startPepeunitImportLoop({
      db: node.db,
      source: source.pool,
      intervalSeconds: 0.01,
      signal: controller.signal,
      onRunFinished: ({ summary }) => {
        if (summary) summaries.push(summary);
        if (summaries.length === 2) controller.abort();
      },
    });

    expect(summaries).toHaveLength(2);
    expect(summaries[0]?.counts.user.inserted).toBe(4);
    expect(summaries[1]?.catalogueChanges).toBe(0);
  });

  it("keeps running after a failed run", async () => {
    const controller = new AbortController();
    // Nothing listens on this loopback port, so every connection is refused.
    const unreachable = new pg.Pool({
      connectionString: `postgres://nobody@127.0.0.1:${await findFreePort()}/pepeunit`,
      max: 1,
    });
    const errors: unknown[] = [];

    await startPepeunitImportLoop({
      db: node.db,
      source: unreachable,
      intervalSeconds: 0.01,
      signal: controller.signal,
      onRunFinished: ({ error }) => {
        errors.push(error);
        if (errors.length === 3) controller.abort();
      },
    });
    await unreachable.end();

    expect(errors).toHaveLength(3);
    expect(errors.every((error) => error instanceof Error)).toBe(true);
    expect(await node.db.select().from(users)).toEqual([]);
  });

  it("does not start a run when already aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    let runs = 0;

    await startPepeunitImportLoop({
      db: node.db,
      source: source.pool,
      intervalSeconds: 60,
      signal: controller.signal,
      onRunFinished: () => {
        runs += 1;
      },
    });

    expect(runs).toBe(0);
  });
});

describe("runPepeunitImportOnce", () => {
  it("imports from a database URL", async () => {
    const summary = await runPepeunitImportOnce(node.db, source.url);

    expect(summary.counts.repo.inserted).toBe(5);
  });
});
