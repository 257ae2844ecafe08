/**
 * Ledger throughput: postings per second through `postTransaction` and `spendTokens` on a
 * throwaway embedded PostgreSQL, at each requested concurrency. Three workloads:
 *
 * - `transfer`: one token from one user's paid account to another's, between many users, so two
 *   postings rarely lock the same account (low contention).
 * - `spend`: `spendTokens` of one token, cycling through the users. Every spend also credits the
 *   node's one `revenue_usage` account and locks its row until commit (high contention).
 * - `replay`: the keys of the `transfer` run of the same level again, so every call finds the
 *   stored transaction and writes nothing.
 *
 * After each run `verifyLedger` must pass and the number of stored transactions must have grown
 * by exactly the number of new postings, or the program stops with exit code 1.
 */
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import type { Database } from "../src/db/client.ts";
import { users } from "../src/db/schema/index.ts";
import { setUpLogging, tearDownLogging } from "../src/logging.ts";
import {
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  spendTokens,
  verifyLedger,
} from "../src/money/ledger/index.ts";
import { createRandom } from "./lib/catalogue-generator.ts";
import { type BenchPostgres, describeMachine, startBenchPostgres } from "./lib/harness.ts";
import { createMigratedDatabase, type MigratedDatabase } from "./lib/migrated-database.ts";
import {
  type LatencySummary,
  ms,
  parseIntegerList,
  parsePositiveInteger,
  spread,
  summarize,
} from "./lib/stats.ts";
import { formatWaitProfile, startWaitSampler, type WaitProfile } from "./lib/wait-events.ts";

const USAGE = `Usage: npm run bench:ledger -- [options]

Posts to the token ledger on a throwaway embedded PostgreSQL and reports postings per second
and latency percentiles per workload and concurrency.

  --workloads LIST     comma-separated, from transfer, spend, replay (default all three);
                       replay needs transfer, because it repeats the transfer keys
  --count N            postings per workload, concurrency level and round (default 1000)
  --concurrency LIST   postings in flight, comma-separated (default 1,8,32)
  --rounds N           repetitions of the whole set of levels (default 3)
  --users N            users with a paid account; transfers pick two at random (default 1000)
  --seed N             seed of the random choice of transfer pairs (default 1)
  --synchronous-commit on|off
                       PostgreSQL synchronous_commit for the ledger database (default on, the
                       server default); off shows how much of the time waits for WAL flushes
  --help               print this text
`;

const WORKLOADS = ["transfer", "spend", "replay"] as const;
type Workload = (typeof WORKLOADS)[number];

/** Paid tokens each user starts with; far more than any run spends. */
const STARTING_BALANCE = 1_000_000_000n;
/** Users funded by one posting, so the setup takes a few commits instead of one per user. */
const FUNDING_BATCH = 500;

interface Options {
  workloads: Workload[];
  count: number;
  concurrency: number[];
  rounds: number;
  users: number;
  seed: number;
  synchronousCommit: "on" | "off";
}

interface BenchUser {
  id: string;
  paidAccountId: number;
}

interface LevelResult {
  workload: Workload;
  concurrency: number;
  round: number;
  postingsPerSecond: number;
  latency: LatencySummary;
  waits: WaitProfile;
  verifyMs: number;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      workloads: { type: "string", default: WORKLOADS.join(",") },
      count: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "1,8,32" },
      rounds: { type: "string", default: "3" },
      users: { type: "string", default: "1000" },
      seed: { type: "string", default: "1" },
      "synchronous-commit": { type: "string", default: "on" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }

  const workloads = values.workloads.split(",").map((part) => part.trim());
  for (const workload of workloads) {
    if (!(WORKLOADS as readonly string[]).includes(workload)) {
      throw new Error(
        `--workloads: unknown workload "${workload}", expected a comma-separated list of ${WORKLOADS.join(", ")}`,
      );
    }
  }
  if (workloads.includes("replay") && !workloads.includes("transfer")) {
    throw new Error("--workloads: replay repeats the transfer keys, so add transfer to the list");
  }
  const synchronousCommit = values["synchronous-commit"];
  if (synchronousCommit !== "on" && synchronousCommit !== "off") {
    throw new Error(`--synchronous-commit: expected on or off, got "${synchronousCommit}"`);
  }
  const userCount = parsePositiveInteger("users", values.users);
  if (userCount < 2) {
    throw new Error(`--users: a transfer needs two users, got "${values.users}"`);
  }
  return {
    // Keep the documented order, so replay always runs after the transfer it repeats.
    workloads: WORKLOADS.filter((workload) => workloads.includes(workload)),
    count: parsePositiveInteger("count", values.count),
    concurrency: parseIntegerList("concurrency", values.concurrency),
    rounds: parsePositiveInteger("rounds", values.rounds),
    users: userCount,
    seed: parsePositiveInteger("seed", values.seed),
    synchronousCommit,
  };
}

/** Creates the users and funds each one's paid account from the `payments_clearing` account. */
async function createUsers(db: Database, count: number): Promise<BenchUser[]> {
  const created = await db
    .insert(users)
    .values(Array.from({ length: count }, (_, index) => ({ login: `bench-payer-${index}` })))
    .returning({ id: users.id });
  const clearing = await openSystemAccount(db, "payments_clearing");
  await openSystemAccount(db, "revenue_usage");

  const benchUsers: BenchUser[] = [];
  for (const { id } of created) {
    const { paid } = await openUserAccounts(db, id);
    benchUsers.push({ id, paidAccountId: paid.id });
  }
  for (let start = 0; start < benchUsers.length; start += FUNDING_BATCH) {
    const batch = benchUsers.slice(start, start + FUNDING_BATCH);
    await postTransaction(db, {
      idempotencyKey: `bench-funding-${start}`,
      kind: "payment.bench",
      entries: [
        { accountId: clearing.id, amount: -STARTING_BALANCE * BigInt(batch.length) },
        ...batch.map((user) => ({ accountId: user.paidAccountId, amount: STARTING_BALANCE })),
      ],
    });
  }
  return benchUsers;
}

/** Returns `count` transfer pairs of two different users, chosen by a seeded PRNG. */
function pickTransferPairs(
  benchUsers: readonly BenchUser[],
  count: number,
  random: () => number,
): [BenchUser, BenchUser][] {
  const pick = () => benchUsers[Math.floor(random() * benchUsers.length)] as BenchUser;
  const pairs: [BenchUser, BenchUser][] = [];
  while (pairs.length < count) {
    const from = pick();
    const to = pick();
    if (from !== to) pairs.push([from, to]);
  }
  return pairs;
}

/** Runs `count` operations through `concurrency` workers and returns the wall time and latencies. */
async function runLevel(
  count: number,
  concurrency: number,
  operation: (index: number) => Promise<void>,
): Promise<{ elapsedMs: number; latencies: number[]; failures: string[] }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= count) return;
      const started = performance.now();
      try {
        await operation(index);
      } catch (error) {
        failures.push(`posting ${index}: ${error instanceof Error ? error.message : error}`);
      }
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { elapsedMs: performance.now() - started, latencies, failures };
}

async function countTransactions(db: Database): Promise<number> {
  const result = await db.execute<{ count: number }>(
    sql`select count(*)::int as count from ledger_transactions`,
  );
  return (result.rows[0] as { count: number }).count;
}

/** Builds the operation of one workload at one level; transfer keys are shared with replay. */
function buildOperation(
  database: MigratedDatabase,
  workload: Workload,
  benchUsers: readonly BenchUser[],
  pairs: readonly [BenchUser, BenchUser][],
  keyPrefix: string,
): (index: number) => Promise<void> {
  const { db } = database;
  if (workload === "spend") {
    return async (index) => {
      const user = benchUsers[index % benchUsers.length] as BenchUser;
      await spendTokens(db, user.id, 1n, `${keyPrefix}:spend:${index}`);
    };
  }
  const expectReplay = workload === "replay";
  return async (index) => {
    const [from, to] = pairs[index] as [BenchUser, BenchUser];
    const posted = await postTransaction(db, {
      idempotencyKey: `${keyPrefix}:transfer:${index}`,
      kind: "transfer",
      entries: [
        { accountId: from.paidAccountId, amount: -1n },
        { accountId: to.paidAccountId, amount: 1n },
      ],
    });
    if (posted.replayed !== expectReplay) {
      throw new Error(`expected replayed ${expectReplay}, got ${posted.replayed}`);
    }
  };
}

function printResults(results: LevelResult[], options: Options): void {
  console.log("\nPer round:");
  console.log(
    "| workload | concurrency | round | postings/s | p50 ms | p95 ms | p99 ms | verify ms | waits |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
  for (const result of results) {
    const { latency } = result;
    console.log(
      `| ${result.workload} | ${result.concurrency} | ${result.round} | ${result.postingsPerSecond.toFixed(0)} | ${ms(latency.p50)} | ${ms(latency.p95)} | ${ms(latency.p99)} | ${ms(result.verifyMs)} | ${formatWaitProfile(result.waits)} |`,
    );
  }

  console.log(`\nSpread over ${options.rounds} rounds (min–max), ${options.count} postings each:`);
  console.log("| workload | concurrency | postings/s | p50 ms | p95 ms | p99 ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const workload of options.workloads) {
    for (const concurrency of options.concurrency) {
      const rows = results.filter(
        (result) => result.workload === workload && result.concurrency === concurrency,
      );
      const pick = (field: "p50" | "p95" | "p99") => rows.map((row) => row.latency[field]);
      console.log(
        `| ${workload} | ${concurrency} | ${spread(
          rows.map((row) => row.postingsPerSecond),
          (value) => value.toFixed(0),
        )} | ${spread(pick("p50"), ms)} | ${spread(pick("p95"), ms)} | ${spread(pick("p99"), ms)} |`,
      );
    }
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  await setUpLogging({ level: "warning", format: "text" });

  let postgres: BenchPostgres | undefined;
  let database: MigratedDatabase | undefined;
  try {
    postgres = await startBenchPostgres();
    const poolSize = Math.max(...options.concurrency);
    database = await createMigratedDatabase(postgres, "bench_ledger", poolSize, {
      synchronous_commit: options.synchronousCommit,
    });
    for (const line of await describeMachine(postgres.adminUrl)) console.log(line);
    console.log(
      `workloads: ${options.workloads.join(",")}, count: ${options.count} per level, concurrency: ${options.concurrency.join(",")}, rounds: ${options.rounds}, users: ${options.users}, seed: ${options.seed}, synchronous_commit: ${options.synchronousCommit}`,
    );

    const { db } = database;
    const benchUsers = await createUsers(db, options.users);
    const random = createRandom(options.seed);

    // Warm the pool, the JIT and PostgreSQL's caches before the clock starts.
    const warmUpPairs = pickTransferPairs(benchUsers, 100, random);
    for (const workload of ["transfer", "spend"] as const) {
      const operation = buildOperation(database, workload, benchUsers, warmUpPairs, "warm-up");
      const warmUp = await runLevel(100, Math.min(4, poolSize), operation);
      if (warmUp.failures.length > 0) {
        throw new Error(`Warm-up ${workload} failed:\n${warmUp.failures.slice(0, 5).join("\n")}`);
      }
    }

    const results: LevelResult[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      for (const concurrency of options.concurrency) {
        const pairs = pickTransferPairs(benchUsers, options.count, random);
        const keyPrefix = `round-${round}:concurrency-${concurrency}`;
        for (const workload of options.workloads) {
          const operation = buildOperation(database, workload, benchUsers, pairs, keyPrefix);
          const before = await countTransactions(db);
          const sampler = await startWaitSampler(database.url);
          const run = await runLevel(options.count, concurrency, operation);
          const waits = await sampler.stop();
          if (run.failures.length > 0) {
            throw new Error(
              `${run.failures.length} of ${options.count} postings failed (${workload}, concurrency ${concurrency}, round ${round}):\n${run.failures.slice(0, 5).join("\n")}`,
            );
          }

          const verifyStarted = performance.now();
          const verification = await verifyLedger(db);
          const verifyMs = performance.now() - verifyStarted;
          const expectedNew = workload === "replay" ? 0 : options.count;
          const stored = (await countTransactions(db)) - before;
          if (stored !== expectedNew) {
            throw new Error(
              `Expected ${expectedNew} new ledger transactions, found ${stored} (${workload}, concurrency ${concurrency}, round ${round})`,
            );
          }

          const result: LevelResult = {
            workload,
            concurrency,
            round,
            postingsPerSecond: (options.count / run.elapsedMs) * 1000,
            latency: summarize(run.latencies),
            waits,
            verifyMs,
          };
          results.push(result);
          console.log(
            `round ${round} ${workload} concurrency ${concurrency}: ${result.postingsPerSecond.toFixed(0)} postings/s, p50 ${ms(result.latency.p50)} ms, p99 ${ms(result.latency.p99)} ms; verifyLedger passed over ${verification.transactions} transactions in ${ms(verifyMs)} ms; waits: ${formatWaitProfile(waits)}`,
          );
        }
      }
    }
    printResults(results, options);
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
    `Ledger benchmark failed: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exitCode = 1;
}
