/**
 * Checks that the committed PostgreSQL migrations match the Drizzle schema, and exits with
 * status 1 when they do not.
 *
 * It runs `drizzle-kit generate` against a temporary copy of the migrations folder. When the
 * schema in `src/db/schema` has changes that no committed migration covers, drizzle-kit writes a
 * new migration into the copy, and this script prints that SQL. It also checks that the journal,
 * the SQL files and the snapshots of the migrations folder list the same migrations.
 *
 * Usage: `npm run db:check` (or `node scripts/check-migrations.ts` with Node 24).
 */
import { spawnSync } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import drizzleConfig from "../drizzle.config.ts";

const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));
const CONFIG_FILE = path.join(PROJECT_ROOT, "drizzle.config.ts");
const GENERATE_TIMEOUT_MS = 120_000;

interface JournalEntry {
  idx: number;
  tag: string;
}

/** Raised for a disagreement that the developer has to fix. The message names the fix. */
class MigrationCheckError extends Error {
  override name = "MigrationCheckError";
}

async function main(): Promise<void> {
  if (!drizzleConfig.out) {
    throw new MigrationCheckError(`${CONFIG_FILE} sets no "out" folder for migrations.`);
  }
  const migrationsDir = path.resolve(PROJECT_ROOT, drizzleConfig.out);

  await checkFolderConsistency(migrationsDir);
  await checkSchemaMatchesMigrations(migrationsDir);

  console.log(`Migrations in ${path.relative(PROJECT_ROOT, migrationsDir)} match the schema.`);
}

/**
 * Checks that every journal entry has its SQL file and snapshot, and that no SQL file is missing
 * from the journal. The drizzle-orm migrator applies only journal entries, so an unlisted SQL
 * file would never run.
 */
async function checkFolderConsistency(migrationsDir: string): Promise<void> {
  const journalPath = path.join(migrationsDir, "meta", "_journal.json");
  let journal: { entries: JournalEntry[] };
  try {
    journal = JSON.parse(await readFile(journalPath, "utf8"));
  } catch (error) {
    throw new MigrationCheckError(
      `Cannot read the migration journal ${journalPath}: ${String(error)}. ` +
        "Run `npm run db:generate` to create the migrations folder.",
    );
  }

  const sqlFiles = new Set((await readdir(migrationsDir)).filter((name) => name.endsWith(".sql")));
  const snapshots = new Set(await readdir(path.join(migrationsDir, "meta")));
  const problems: string[] = [];

  for (const entry of journal.entries) {
    const sqlFile = `${entry.tag}.sql`;
    if (!sqlFiles.has(sqlFile)) problems.push(`journal entry ${entry.tag} has no ${sqlFile}`);
    sqlFiles.delete(sqlFile);

    // drizzle-kit names each snapshot after the numeric prefix of its migration tag.
    const snapshot = `${entry.tag.split("_")[0]}_snapshot.json`;
    if (!snapshots.has(snapshot))
      problems.push(`journal entry ${entry.tag} has no meta/${snapshot}`);
  }
  for (const orphan of sqlFiles) {
    problems.push(`${orphan} is not listed in meta/_journal.json, so it is never applied`);
  }

  if (problems.length > 0) {
    throw new MigrationCheckError(
      `The migrations folder ${migrationsDir} is inconsistent:\n  - ${problems.join("\n  - ")}\n` +
        "Restore the missing files from git, or delete the stray ones and run `npm run db:generate`.",
    );
  }
}

/**
 * Runs `drizzle-kit generate` into a temporary copy of the migrations folder and fails when it
 * writes a new migration there.
 */
async function checkSchemaMatchesMigrations(migrationsDir: string): Promise<void> {
  const scratch = await mkdtemp(path.join(tmpdir(), "pepeunit-node-migration-check-"));
  try {
    const copyDir = path.join(scratch, "postgres");
    await cp(migrationsDir, copyDir, { recursive: true });
    const before = new Set(await listFiles(copyDir));

    // drizzle-kit 0.31.11 prefixes "./" to `out`, so an absolute path breaks and the copy is
    // given relative to the working directory, which is the project root.
    const scratchConfig = path.join(scratch, "drizzle.config.ts");
    await writeFile(
      scratchConfig,
      `import base from ${JSON.stringify(pathToFileURL(CONFIG_FILE).href)};\n` +
        `export default { ...base, out: ${JSON.stringify(path.relative(PROJECT_ROOT, copyDir))} };\n`,
    );

    const output = runDrizzleKitGenerate(scratchConfig);

    const added = (await listFiles(copyDir)).filter((file) => !before.has(file));
    const addedSql = added.filter((file) => file.endsWith(".sql"));
    if (addedSql.length > 0) {
      const previews = await Promise.all(
        addedSql.map(
          async (file) => `-- ${file}\n${await readFile(path.join(copyDir, file), "utf8")}`,
        ),
      );
      throw new MigrationCheckError(
        "The schema in src/db/schema has changes that no migration in migrations/postgres " +
          "covers. drizzle-kit would generate:\n\n" +
          `${previews.join("\n")}\n` +
          "Run `npm run db:generate -- --name <what changed>` and commit the new migration files.",
      );
    }

    // drizzle-kit prompts whether a column or table was renamed or created, and without a
    // terminal it prints this error instead. Only a schema change leads to that prompt.
    if (/Interactive prompts require a TTY/.test(output)) {
      throw new MigrationCheckError(
        "The schema in src/db/schema has changes that no migration in migrations/postgres " +
          "covers, and drizzle-kit needs to ask whether a column or table was renamed. " +
          "Run `npm run db:generate -- --name <what changed>` in a terminal, answer its " +
          `questions and commit the new migration files. Its output was:\n${output}`,
      );
    }

    // NOTE: drizzle-kit 0.31.11 exits with status 0 even when it prints an error and writes
    // nothing, so a clean result is only trusted together with its "No schema changes" line.
    if (!/No schema changes/.test(output)) {
      throw new MigrationCheckError(
        "drizzle-kit generate wrote no migration but did not report `No schema changes` either, " +
          `so the check cannot tell whether the schema matches. Its output was:\n${output}`,
      );
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Runs drizzle-kit with the Node binary that runs this script, and returns its output. */
function runDrizzleKitGenerate(configPath: string): string {
  const require = createRequire(import.meta.url);
  // The package exports neither `bin.cjs` nor `package.json`, but its main entry sits next to them.
  const drizzleKitBin = path.join(path.dirname(require.resolve("drizzle-kit")), "bin.cjs");

  // stdin is closed because drizzle-kit prompts on an ambiguous change such as a rename. Without
  // a terminal it then fails instead of waiting for an answer.
  const result = spawnSync(process.execPath, [drizzleKitBin, "generate", "--config", configPath], {
    cwd: PROJECT_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: GENERATE_TIMEOUT_MS,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;

  if (result.error) {
    throw new MigrationCheckError(
      `drizzle-kit generate failed to run: ${result.error.message}\n${output}`,
    );
  }
  if (result.status !== 0) {
    throw new MigrationCheckError(
      `drizzle-kit generate exited with ${result.status ?? result.signal}. Its output was:\n${output}`,
    );
  }
  return output;
}

/** Lists the files under `dir` as paths relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)));
}

try {
  await main();
} catch (error) {
  if (error instanceof MigrationCheckError) {
    console.error(`Migration check failed: ${error.message}`);
  } else {
    console.error("Migration check failed with an unexpected error:", error);
  }
  process.exitCode = 1;
}
