import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { repos, users } from "./schema/index.ts";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "schema");
});

afterAll(async () => {
  await database.drop();
});

describe("schema", () => {
  it("fills the repo search document", async () => {
    const [owner] = await database.db.insert(users).values({ login: "alice" }).returning();
    await database.db.insert(repos).values({
      name: "weather-station",
      summary: "ESP32 thermometer",
      repositoryUrl: "https://github.com/example/weather-station.git",
      platform: "Github",
      ownerId: owner?.id,
    });
    const rows = await database.db.execute<{ name: string }>(
      sql`select name from repos where search_document @@ plainto_tsquery('simple', 'thermometer')`,
    );
    expect(rows.rows.map((row) => row.name)).toEqual(["weather-station"]);
  });

  it("rejects an unknown visibility", async () => {
    const failure = await database.db
      .execute(
        sql`insert into repos (name, repository_url, platform, visibility) values ('x1234', 'u', 'Github', 'Secret')`,
      )
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error & { cause: { constraint?: string } }).cause.constraint).toBe(
      "repos_visibility_check",
    );
  });
});
