import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { AdvisoryLockHolder } from "./advisory-lock.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "lock");
});

afterAll(async () => {
  await database.drop();
});

describe("AdvisoryLockHolder", () => {
  it("lets one holder at a time", async () => {
    const first = new AdvisoryLockHolder(database.pool, 42);
    const second = new AdvisoryLockHolder(database.pool, 42);
    expect(await first.hold()).toBe(true);
    expect(await first.hold()).toBe(true);
    expect(await second.hold()).toBe(false);

    await first.release();
    expect(await second.hold()).toBe(true);
    expect(await first.hold()).toBe(false);
    await second.release();
  });

  it("frees the lock when its connection ends", async () => {
    const first = new AdvisoryLockHolder(database.pool, 7);
    const second = new AdvisoryLockHolder(database.pool, 7);
    expect(await first.hold()).toBe(true);
    await database.pool.query(
      "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and objid = 7",
    );
    expect(await second.hold()).toBe(true);
    await second.release();
  });
});
