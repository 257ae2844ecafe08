/**
 * Data of the billing benchmark: users with funded paid accounts, Units spread evenly over them,
 * and graded hours with a seeded mix of green, yellow and red Units. Rows are inserted in bulk
 * with SQL, because the benchmark measures the billing run, not the setup.
 */
import type { Database } from "../../src/db/client.ts";
import { gradingRuns, repos } from "../../src/db/schema/index.ts";
import {
  openSystemAccount,
  openUserAccounts,
  postTransaction,
} from "../../src/money/ledger/index.ts";
import type { MigratedDatabase } from "./migrated-database.ts";

/** Paid tokens each user starts with, far more than the benchmark's runs charge. */
export const STARTING_BALANCE = 1_000_000_000n;
/** Users funded by one posting, so the setup takes a few commits instead of one per user. */
const FUNDING_BATCH = 500;
/** Rows per INSERT statement of the bulk inserts. */
const INSERT_BATCH = 10_000;

/** Share of the Units in each billing colour; the rest are green. */
export const COLOUR_MIX = { yellow: 0.3, red: 0.2 } as const;

/**
 * Percentile and load ranges per colour. The percentiles match the default billing thresholds
 * (yellow from 50, red from 80). Loads are in mean MPS over the hour, and with a capacity of
 * 1000 MPS every yellow or red load costs at least 10 tokens, so each of those Units gets a
 * posting.
 */
const COLOUR_RANGES = {
  green: { percentile: [0, 50], mps: [0, 10] },
  yellow: { percentile: [50, 80], mps: [10, 30] },
  red: { percentile: [80, 100], mps: [30, 100] },
} as const;

export type FixtureColour = keyof typeof COLOUR_RANGES;

export interface BillingFixture {
  userIds: string[];
  unitIds: string[];
}

/** Creates `userCount` funded users and `unitCount` Units, Unit i owned by user i mod users. */
export async function createBillingFixture(
  database: MigratedDatabase,
  userCount: number,
  unitCount: number,
  concurrency: number,
): Promise<BillingFixture> {
  const { db, pool } = database;
  // Arrays go through pg's parameters directly, because drizzle's sql template expands an array
  // into a list of parameters.
  const userRows = await pool.query<{ id: string }>(
    "insert into users (login) select 'bench-billing-' || i from generate_series(1, $1::int) i returning id",
    [userCount],
  );
  const userIds = userRows.rows.map((row) => row.id);

  const paidAccounts: number[] = new Array(userIds.length);
  let next = 0;
  const openAccounts = async () => {
    for (let index = next++; index < userIds.length; index = next++) {
      paidAccounts[index] = (await openUserAccounts(db, userIds[index] as string)).paid.id;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, openAccounts));
  const clearing = await openSystemAccount(db, "payments_clearing");
  await openSystemAccount(db, "revenue_usage");
  for (let start = 0; start < paidAccounts.length; start += FUNDING_BATCH) {
    const batch = paidAccounts.slice(start, start + FUNDING_BATCH);
    await postTransaction(db, {
      idempotencyKey: `bench-billing-funding-${start}`,
      kind: "payment.bench",
      entries: [
        { accountId: clearing.id, amount: -STARTING_BALANCE * BigInt(batch.length) },
        ...batch.map((accountId) => ({ accountId, amount: STARTING_BALANCE })),
      ],
    });
  }

  const [repo] = await db
    .insert(repos)
    .values({
      name: "bench-billing-repo",
      repositoryUrl: "https://git.example.com/bench",
      platform: "Gitlab",
    })
    .returning({ id: repos.id });
  const repoId = (repo as { id: string }).id;
  const unitIds: string[] = [];
  for (let start = 0; start < unitCount; start += INSERT_BATCH) {
    const end = Math.min(unitCount, start + INSERT_BATCH);
    const owners = Array.from(
      { length: end - start },
      (_, offset) => userIds[(start + offset) % userIds.length] as string,
    );
    const rows = await pool.query<{ id: string }>(
      `insert into units (repo_id, owner_id, name)
       select $1::uuid, owner, 'bench-unit-' || ($2::int + ordinality)
       from unnest($3::uuid[]) with ordinality as owners(owner, ordinality)
       order by ordinality
       returning id`,
      [repoId, start, owners],
    );
    unitIds.push(...rows.rows.map((row) => row.id));
  }
  return { userIds, unitIds };
}

function pickColour(random: () => number): FixtureColour {
  const draw = random();
  if (draw < COLOUR_MIX.red) return "red";
  if (draw < COLOUR_MIX.red + COLOUR_MIX.yellow) return "yellow";
  return "green";
}

function between(random: () => number, [low, high]: readonly [number, number]): number {
  return low + random() * (high - low);
}

/**
 * Stores a completed grading run of `hour` and one grade per Unit with a colour drawn from
 * {@link COLOUR_MIX}. Returns the count of Units per colour.
 */
export async function gradeHour(
  { db, pool }: { db: Database; pool: MigratedDatabase["pool"] },
  hour: Date,
  unitIds: readonly string[],
  random: () => number,
): Promise<Record<FixtureColour, number>> {
  const [run] = await db
    .insert(gradingRuns)
    .values({
      hour,
      trigger: "manual",
      status: "completed",
      instanceStatus: "yellow",
      parameters: { source: "bench/billing-run.ts" },
      figures: {},
      finishedAt: new Date(),
    })
    .returning({ id: gradingRuns.id });
  const runId = (run as { id: string }).id;

  const counts: Record<FixtureColour, number> = { green: 0, yellow: 0, red: 0 };
  for (let start = 0; start < unitIds.length; start += INSERT_BATCH) {
    const batch = unitIds.slice(start, start + INSERT_BATCH);
    const colours: FixtureColour[] = [];
    const percentiles: number[] = [];
    const meanMps: number[] = [];
    const messages: number[] = [];
    for (let index = 0; index < batch.length; index++) {
      const colour = pickColour(random);
      const range = COLOUR_RANGES[colour];
      const mps = between(random, range.mps);
      counts[colour] += 1;
      colours.push(colour);
      percentiles.push(between(random, range.percentile));
      meanMps.push(mps);
      messages.push(Math.floor(mps * 3600));
    }
    await pool.query(
      `insert into unit_grades
         (hour, unit_id, run_id, colour, percentile, mean_mps, peak_mps, messages, bytes,
          active_samples, hot)
       select $1::timestamptz, unit_id, $2::uuid, colour, percentile, mps, mps, messages,
              messages * 40, 12, false
       from unnest($3::uuid[], $4::text[], $5::float8[], $6::float8[], $7::bigint[])
         as grades(unit_id, colour, percentile, mps, messages)`,
      [hour.toISOString(), runId, batch, colours, percentiles, meanMps, messages],
    );
  }
  return counts;
}
