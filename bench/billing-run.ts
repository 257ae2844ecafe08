/**
 * Hourly billing run: one `runUsageBilling` of a graded hour with many Units, end to end, on a
 * throwaway embedded PostgreSQL with monetisation on. The Units are spread evenly over funded
 * users, and each hour's grades have a seeded colour mix (50% green, 30% yellow, 20% red).
 *
 * After each run `verifyLedger` must pass, every yellow and red Unit must have exactly one
 * charge of the hour and no green Unit any, and a second run of the same hour must charge
 * nothing. Otherwise the program stops with exit code 1.
 */
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { runUsageBilling } from "../src/billing/run.ts";
import { OffUnitAccess } from "../src/billing/unit-access.ts";
import { type Config, loadConfig } from "../src/config.ts";
import type { Database } from "../src/db/client.ts";
import type { BillingRunRow } from "../src/db/schema/index.ts";
import { setUpLogging, tearDownLogging } from "../src/logging.ts";
import { verifyLedger } from "../src/money/ledger/index.ts";
import { PostgresTimeSeriesStore } from "../src/timeseries/postgres/store.ts";
import { floorHour } from "../src/timeseries/time.ts";
import { createBillingFixture, type FixtureColour, gradeHour } from "./lib/billing-fixture.ts";
import { createRandom } from "./lib/catalogue-generator.ts";
import { type BenchPostgres, describeMachine, startBenchPostgres } from "./lib/harness.ts";
import { createMigratedDatabase, type MigratedDatabase } from "./lib/migrated-database.ts";
import { ms, parsePositiveInteger, spread } from "./lib/stats.ts";

const USAGE = `Usage: npm run bench:billing -- [options]

Bills graded hours of many Units on a throwaway embedded PostgreSQL and reports the time of one
hourly billing run, Units charged and postings per second, and the time of each phase.

  --units N         Units, each graded in every billed hour (default 100000)
  --users N         users who own the Units, evenly (default 10000)
  --concurrency N   owners charged in parallel by the run (default 1, the node's default)
  --runs N          hours billed one after another, each with new grades (default 2)
  --seed N          seed of the colour and load of each grade (default 1)
  --help            print this text
`;

/** Capacity and free load of the benchmark's instance, in messages per second. */
const CAPACITY_MPS = "1000";
const FREE_MPS = "1";
const SECONDS_PER_HOUR = 3600;

interface Options {
  units: number;
  users: number;
  concurrency: number;
  runs: number;
  seed: number;
}

interface RunResult {
  hour: Date;
  charged: number;
  elapsedMs: number;
  postings: number;
  loadingGradesMs: number;
  pricingMs: number;
  postingMs: number;
  verifyMs: number;
  rerunMs: number;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      units: { type: "string", default: "100000" },
      users: { type: "string", default: "10000" },
      concurrency: { type: "string", default: "1" },
      runs: { type: "string", default: "2" },
      seed: { type: "string", default: "1" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const options = {
    units: parsePositiveInteger("units", values.units),
    users: parsePositiveInteger("users", values.users),
    concurrency: parsePositiveInteger("concurrency", values.concurrency),
    runs: parsePositiveInteger("runs", values.runs),
    seed: parsePositiveInteger("seed", values.seed),
  };
  if (options.users > options.units) {
    throw new Error(
      `--users: ${options.users} users for ${options.units} Units leaves users without Units; use at most --units`,
    );
  }
  return options;
}

function benchConfig(): Config {
  return loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_ORIGIN: "https://bench.example.com",
    PU_NODE_BILLING_ENABLED: "true",
    PU_NODE_CAPACITY_MPS: CAPACITY_MPS,
    PU_NODE_FREE_MPS: FREE_MPS,
  });
}

async function countOne(db: Database, query: ReturnType<typeof sql>): Promise<number> {
  const result = await db.execute<{ count: number }>(query);
  return (result.rows[0] as { count: number }).count;
}

function countTransactions(db: Database): Promise<number> {
  return countOne(db, sql`select count(*)::int as count from ledger_transactions`);
}

/**
 * Checks that every yellow or red Unit of `hour` has exactly one charge and no green Unit has
 * one. The thresholds are the default billing percentiles (yellow from 50).
 */
async function checkCharges(db: Database, hour: Date, expected: number): Promise<void> {
  const suffix = `:${hour.toISOString()}`;
  const charged = sql`exists (select 1 from ledger_transactions t
    where t.idempotency_key = 'usage:' || g.unit_id::text || ${suffix})`;
  const missing = await countOne(
    db,
    sql`select count(*)::int as count from unit_grades g
        where g.hour = ${hour.toISOString()}::timestamptz and g.percentile >= 50 and not ${charged}`,
  );
  const greenCharged = await countOne(
    db,
    sql`select count(*)::int as count from unit_grades g
        where g.hour = ${hour.toISOString()}::timestamptz and g.percentile < 50 and ${charged}`,
  );
  const keys = await countOne(
    db,
    sql`select count(*)::int as count from ledger_transactions
        where kind = 'usage' and idempotency_key like ${`usage:%${suffix}`}`,
  );
  if (missing !== 0 || greenCharged !== 0 || keys !== expected) {
    throw new Error(
      `Charges of ${hour.toISOString()} are wrong: ${missing} yellow or red Units without a charge, ` +
        `${greenCharged} green Units charged, ${keys} charges for ${expected} yellow or red Units`,
    );
  }
}

function timing(run: BillingRunRow, phase: "loadingGrades" | "pricing" | "posting"): number {
  const timings = run.details.timingsMs as Record<string, number> | undefined;
  return timings?.[phase] ?? Number.NaN;
}

/** Bills one freshly graded hour twice and checks the ledger after each run. */
async function billHour(
  database: MigratedDatabase,
  config: Config,
  options: Options,
  unitIds: readonly string[],
  hour: Date,
  random: () => number,
): Promise<RunResult> {
  const { db } = database;
  const colours: Record<FixtureColour, number> = await gradeHour(database, hour, unitIds, random);
  const expected = colours.yellow + colours.red;
  const dependencies = {
    db,
    config,
    store: new PostgresTimeSeriesStore(db),
    access: new OffUnitAccess(),
  };
  const request = { hour, trigger: "manual" as const, concurrency: options.concurrency };

  const before = await countTransactions(db);
  const started = performance.now();
  const run = await runUsageBilling(dependencies, request);
  const elapsedMs = performance.now() - started;
  const postings = (await countTransactions(db)) - before;
  if (run.status !== "completed" || run.failures !== 0 || run.charged !== expected) {
    throw new Error(
      `Run of ${hour.toISOString()} ended ${run.status} with ${run.failures} failures and ` +
        `${run.charged} Units charged, expected ${expected}: ${JSON.stringify(run.details.failures)}`,
    );
  }

  const verifyStarted = performance.now();
  await verifyLedger(db);
  const verifyMs = performance.now() - verifyStarted;
  await checkCharges(db, hour, expected);

  const rerunStarted = performance.now();
  const rerun = await runUsageBilling(dependencies, request);
  const rerunMs = performance.now() - rerunStarted;
  const afterRerun = await countTransactions(db);
  if (rerun.charged !== 0 || afterRerun !== before + postings) {
    throw new Error(
      `Second run of ${hour.toISOString()} charged ${rerun.charged} Units and stored ` +
        `${afterRerun - before - postings} transactions, expected none`,
    );
  }

  console.log(
    `${hour.toISOString()}: ${colours.green} green, ${colours.yellow} yellow, ${colours.red} red; ` +
      `run ${ms(elapsedMs)} ms, ${run.charged} charged, ${postings} postings; ` +
      `loading grades ${timing(run, "loadingGrades")} ms, pricing ${timing(run, "pricing")} ms, ` +
      `posting ${timing(run, "posting")} ms; verifyLedger ${ms(verifyMs)} ms; ` +
      `second run ${ms(rerunMs)} ms, 0 charged`,
  );
  return {
    hour,
    charged: run.charged,
    elapsedMs,
    postings,
    loadingGradesMs: timing(run, "loadingGrades"),
    pricingMs: timing(run, "pricing"),
    postingMs: timing(run, "posting"),
    verifyMs,
    rerunMs,
  };
}

function printSummary(results: readonly RunResult[], options: Options): void {
  const seconds = (value: number) => (value / 1000).toFixed(1);
  const rate = (value: number) => value.toFixed(0);
  const pick = (read: (result: RunResult) => number) => results.map(read);
  console.log(
    `\nSpread over ${results.length} runs (min–max), ${options.units} Units, ${options.users} users, concurrency ${options.concurrency}:`,
  );
  console.log(
    "| run s | Units charged/s | postings/s | loading grades ms | pricing ms | posting s | share of the hour | second run ms | verifyLedger ms |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  console.log(
    `| ${spread(
      pick((r) => r.elapsedMs),
      seconds,
    )} | ${spread(
      pick((r) => (r.charged / r.elapsedMs) * 1000),
      rate,
    )} | ${spread(
      pick((r) => (r.postings / r.elapsedMs) * 1000),
      rate,
    )} | ${spread(
      pick((r) => r.loadingGradesMs),
      ms,
    )} | ${spread(
      pick((r) => r.pricingMs),
      ms,
    )} | ${spread(
      pick((r) => r.postingMs),
      seconds,
    )} | ${spread(
      pick((r) => (r.elapsedMs / (SECONDS_PER_HOUR * 1000)) * 100),
      (value) => `${value.toFixed(1)}%`,
    )} | ${spread(
      pick((r) => r.rerunMs),
      ms,
    )} | ${spread(
      pick((r) => r.verifyMs),
      ms,
    )} |`,
  );
}

async function main(): Promise<void> {
  const options = readOptions();
  await setUpLogging({ level: "warning", format: "text" });

  let postgres: BenchPostgres | undefined;
  let database: MigratedDatabase | undefined;
  try {
    postgres = await startBenchPostgres();
    database = await createMigratedDatabase(postgres, "bench_billing", options.concurrency + 2);
    for (const line of await describeMachine(postgres.adminUrl)) console.log(line);
    console.log(
      `units: ${options.units}, users: ${options.users}, concurrency: ${options.concurrency}, runs: ${options.runs}, seed: ${options.seed}, capacity: ${CAPACITY_MPS} MPS, free: ${FREE_MPS} MPS`,
    );

    const setupStarted = performance.now();
    const fixture = await createBillingFixture(
      database,
      options.users,
      options.units,
      options.concurrency + 2,
    );
    console.log(`setup: ${ms(performance.now() - setupStarted)} ms`);

    const config = benchConfig();
    const random = createRandom(options.seed);
    const firstHour = floorHour(new Date(Date.now() - 48 * 3_600_000));
    const results: RunResult[] = [];
    for (let index = 0; index < options.runs; index++) {
      const hour = new Date(firstHour.getTime() + index * 3_600_000);
      results.push(await billHour(database, config, options, fixture.unitIds, hour, random));
    }
    printSummary(results, options);
  } finally {
    await database?.close();
    await postgres?.stop();
    await tearDownLogging();
  }
}

try {
  await main();
} catch (error) {
  console.error(
    `Billing benchmark failed: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exitCode = 1;
}
