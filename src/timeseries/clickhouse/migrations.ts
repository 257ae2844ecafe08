/**
 * Applies the plain SQL files in `migrations/clickhouse` in file name order and records each
 * applied file in `schema_migrations`. ClickHouse has no transactions, so a file that fails
 * halfway is run again whole on the next start; its statements must be safe to repeat.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ClickHouseClient } from "@clickhouse/client";
import { getNodeLogger } from "../../logging.ts";
import { quoteString } from "./sql.ts";

const logger = getNodeLogger("timeseries", "clickhouse");

export const CLICKHOUSE_MIGRATIONS_DIR = fileURLToPath(
  new URL("../../../migrations/clickhouse", import.meta.url),
);

/**
 * Splits a migration file into statements at semicolons that end a line, after removing
 * `--` comment lines. Semicolons inside a line (for example in a string) do not split.
 */
export function splitStatements(text: string): string[] {
  const lines = text.split("\n").filter((line) => !line.trimStart().startsWith("--"));
  const statements: string[] = [];
  let current: string[] = [];
  for (const line of lines) {
    if (line.trimEnd().endsWith(";")) {
      current.push(line.trimEnd().slice(0, -1));
      statements.push(current.join("\n").trim());
      current = [];
    } else {
      current.push(line);
    }
  }
  const rest = current.join("\n").trim();
  if (rest) statements.push(rest);
  return statements.filter((statement) => statement.length > 0);
}

/** Applies pending migrations; returns the names of the files applied by this call. */
export async function migrateClickHouse(
  client: ClickHouseClient,
  directory = CLICKHOUSE_MIGRATIONS_DIR,
): Promise<string[]> {
  logger.info("Applying ClickHouse migrations from {dir}", { dir: directory });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations (
      name String,
      applied_at DateTime('UTC')
    ) ENGINE = MergeTree() ORDER BY name`,
  });
  const result = await client.query({
    query: "SELECT DISTINCT name FROM schema_migrations",
    format: "JSONEachRow",
  });
  const applied = new Set((await result.json<{ name: string }>()).map((row) => row.name));

  const files = (await readdir(directory)).filter((name) => name.endsWith(".sql")).sort();
  const done: string[] = [];
  for (const file of files) {
    if (applied.has(file)) continue;
    try {
      const text = await readFile(path.join(directory, file), "utf8");
      for (const statement of splitStatements(text)) {
        await client.command({ query: statement });
      }
      await client.command({
        query: `INSERT INTO schema_migrations (name, applied_at) VALUES (${quoteString(file)}, now())`,
      });
    } catch (error) {
      logger.error("ClickHouse migration {file} failed: {error}", { file, error });
      throw error;
    }
    logger.info("Applied ClickHouse migration {file}", { file });
    done.push(file);
  }
  logger.info("ClickHouse migrations applied: {count} new", { count: done.length });
  return done;
}
