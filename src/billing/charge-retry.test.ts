/**
 * Hourly billing runs against real PostgreSQL while another transaction spends from the same
 * user. The other spend holds the user's account locks until the run waits for them, so the run's
 * charge reads the balance before that spend commits and posts after it: the race that makes
 * `chargeUser` raise.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { and, eq } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/postgres.ts";
import { type Config, loadConfig } from "../config.ts";
import { createDatabase } from "../db/client.ts";
import {
  billingRuns,
  gradingRuns,
  ledgerTransactions,
  repos,
  unitBillingState,
  unitGrades,
  units,
  users,
} from "../db/schema/index.ts";
import {
  IdempotencyConflictError,
  InsufficientFundsError,
  openSystemAccount,
  openUserAccounts,
  postTransaction,
  spendTokens,
  verifyLedger,
} from "../money/ledger/index.ts";
import { PostgresTimeSeriesStore } from "../timeseries/postgres/store.ts";
import { floorHour } from "../timeseries/time.ts";
import { chargeWithRetry, isRetryableChargeError } from "./charge-retry.ts";
import { RETRY_DELAY_MS, runBillingCheck } from "./job.ts";
import { type BillingDependencies, runUsageBilling } from "./run.ts";
import { OffUnitAccess } from "./unit-access.ts";

/** Paid tokens of the user before the race. */
const STARTING_BALANCE = 500n;
/** Tokens that the concurrent spend takes while the run waits. */
const CONCURRENT_SPEND = 120n;
/** Max wait for the run to block on the held locks. Passing it fails the test, so it is no timing check. */
const LOCK_WAIT_LIMIT_MS = 20_000;

let database: TestDatabase;
let config: Config;
let dependencies: BillingDependencies;
/** A graded hour inside the job's billing window of the real clock. */
let hour: Date;

beforeAll(async () => {
  database = await createTestDatabase(inject("postgresAdminUrl"), "billing_retry");
  // Capacity 1 MPS is 3600 messages per hour, so a Unit with 3600 messages has an unbounded
  // price and is charged its owner's whole balance, read just before the spend.
  config = loadConfig({
    PU_NODE_ENV: "test",
    PU_NODE_CAPACITY_MPS: "1",
    PU_NODE_FREE_MPS: "0.1",
    PU_NODE_HALF_CAPACITY_PRICE: "100",
    PU_NODE_MONTHLY_FREE_TOKENS: "0",
    PU_NODE_BILLING_ENABLED: "true",
  });
  dependencies = {
    db: database.db,
    config,
    store: new PostgresTimeSeriesStore(database.db),
    access: new OffUnitAccess(),
  };
});

afterAll(async () => {
  await database?.drop();
});

beforeEach(async () => {
  hour = new Date(floorHour(new Date()).getTime() - 3_600_000);
  await database.pool.query(
    "truncate billing_settings, billing_settings_history, billing_runs, unit_grades, grading_runs cascade",
  );
});

/** Creates a user with paid tokens and a Unit owned by them, or by nobody. */
async function createUnit(owned = true): Promise<{ userId: string; unitId: string }> {
  const db = database.db;
  const [user] = await db
    .insert(users)
    .values({ login: `retry-${randomUUID()}` })
    .returning({ id: users.id });
  const userId = (user as { id: string }).id;
  const [repo] = await db
    .insert(repos)
    .values({
      name: `r-${randomUUID()}`,
      repositoryUrl: "https://git.example.com/r",
      platform: "Gitlab",
    })
    .returning({ id: repos.id });
  const [unit] = await db
    .insert(units)
    .values({
      repoId: (repo as { id: string }).id,
      ownerId: owned ? userId : null,
      name: `unit-${randomUUID()}`,
    })
    .returning({ id: units.id });

  const { paid } = await openUserAccounts(db, userId);
  const clearing = await openSystemAccount(db, "payments_clearing");
  await openSystemAccount(db, "revenue_usage");
  await postTransaction(db, {
    idempotencyKey: `retry-test-credit-${userId}`,
    kind: "test",
    entries: [
      { accountId: clearing.id, amount: -STARTING_BALANCE },
      { accountId: paid.id, amount: STARTING_BALANCE },
    ],
  });
  return { userId, unitId: (unit as { id: string }).id };
}

/** Stores a completed grading run of `hour` with the Unit red at the capacity. */
async function gradeAtCapacity(unitId: string): Promise<void> {
  const [run] = await database.db
    .insert(gradingRuns)
    .values({
      hour,
      trigger: "manual",
      status: "completed",
      instanceStatus: "red",
      parameters: {},
      figures: {},
      finishedAt: new Date(),
    })
    .returning({ id: gradingRuns.id });
  await database.db.insert(unitGrades).values({
    hour,
    unitId,
    runId: (run as { id: string }).id,
    colour: "red",
    percentile: 95,
    meanMps: 1,
    peakMps: 1,
    messages: 3600,
    bytes: 36_000,
    activeSamples: 12,
    hot: true,
  });
}

/**
 * Spends `CONCURRENT_SPEND` from the user in a transaction of its own connection and keeps it
 * open. `commit` ends it, and only then do others see the smaller balance.
 */
async function holdSpend(userId: string): Promise<{ commit: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const db = createDatabase(client as unknown as pg.Pool);
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let locked: () => void = () => {};
  const lockedPromise = new Promise<void>((resolve) => {
    locked = resolve;
  });
  const transaction = db.transaction(async (tx) => {
    await spendTokens(tx, userId, CONCURRENT_SPEND, `retry-test-spend-${userId}`);
    locked();
    await released;
  });
  await Promise.race([lockedPromise, transaction]);
  return {
    commit: async () => {
      release();
      await transaction;
      await client.end();
    },
  };
}

/** Waits until a session of the test database waits for a row lock. */
async function waitForLockWait(): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_LIMIT_MS;
  while (Date.now() < deadline) {
    const { rows } = await database.pool.query<{ waiting: number }>(
      "select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if ((rows[0]?.waiting ?? 0) > 0) return;
    await sleep(20);
  }
  throw new Error(`No session waited for a lock within ${LOCK_WAIT_LIMIT_MS} ms`);
}

/** Runs the hour's usage billing while the user's concurrent spend commits. */
async function billDuringSpend(userId: string, maxChargeAttempts?: number) {
  const held = await holdSpend(userId);
  const running = runUsageBilling(dependencies, {
    hour,
    trigger: "manual",
    ...(maxChargeAttempts === undefined ? {} : { maxChargeAttempts }),
  });
  await waitForLockWait();
  await held.commit();
  return await running;
}

async function usageCharges(unitId: string) {
  const rows = await database.db.select().from(ledgerTransactions);
  return rows.filter((row) => row.kind === "usage" && row.metadata.unitId === unitId);
}

async function usageRuns() {
  return await database.db
    .select()
    .from(billingRuns)
    .where(and(eq(billingRuns.kind, "usage"), eq(billingRuns.period, hour)));
}

async function paidBalance(userId: string): Promise<bigint> {
  const { free, paid } = await openUserAccounts(database.db, userId);
  return free.balance + paid.balance;
}

describe("usage run racing a spend", () => {
  it("retries the charge with the same key", async () => {
    const { userId, unitId } = await createUnit();
    await gradeAtCapacity(unitId);

    const run = await billDuringSpend(userId);

    expect(run.status).toBe("completed");
    expect(run.failures).toBe(0);
    expect(run.charged).toBe(1);
    expect(run.details.retries).toBe(1);
    const charges = await usageCharges(unitId);
    expect(charges).toHaveLength(1);
    expect(charges[0]?.metadata.exhausted).toBe(true);
    expect(run.total).toBe(STARTING_BALANCE - CONCURRENT_SPEND);
    expect(await paidBalance(userId)).toBe(0n);
    const [state] = await database.db
      .select()
      .from(unitBillingState)
      .where(eq(unitBillingState.unitId, unitId));
    expect(state?.state).toBe("stopped");
    expect(state?.reason).toBe("load_at_capacity");
    await verifyLedger(database.db);
  });

  it("records a lost charge for the next run", async () => {
    const { userId, unitId } = await createUnit();
    await gradeAtCapacity(unitId);

    const run = await billDuringSpend(userId, 1);

    expect(run.status).toBe("completed");
    expect(run.failures).toBe(1);
    expect(run.details.failures).toEqual([
      { id: unitId, error: expect.stringMatching(/Insufficient funds/), retryable: true },
    ]);
    expect(await usageCharges(unitId)).toHaveLength(0);

    const started = run.startedAt.getTime();
    await runBillingCheck({ ...dependencies, clock: () => new Date(started + 60_000) });
    expect(await usageRuns()).toHaveLength(1);

    await runBillingCheck({ ...dependencies, clock: () => new Date(started + RETRY_DELAY_MS) });
    const runs = await usageRuns();
    expect(runs).toHaveLength(2);
    const rerun = runs.find((row) => row.id !== run.id);
    expect(rerun?.failures).toBe(0);
    expect(rerun?.charged).toBe(1);
    expect(rerun?.total).toBe(STARTING_BALANCE - CONCURRENT_SPEND);
    expect(await usageCharges(unitId)).toHaveLength(1);
    await verifyLedger(database.db);
  });

  it("does not rebill a failure that is not retryable", async () => {
    const { unitId } = await createUnit(false);
    await gradeAtCapacity(unitId);

    const run = await runUsageBilling(dependencies, { hour, trigger: "manual" });

    expect(run.failures).toBe(1);
    expect(run.details.failures).toEqual([
      { id: unitId, error: expect.stringMatching(/has no owner/), retryable: false },
    ]);
    const later = new Date(run.startedAt.getTime() + RETRY_DELAY_MS);
    await runBillingCheck({ ...dependencies, clock: () => later });
    expect(await usageRuns()).toHaveLength(1);
  });

  it("skips charged Units on a rerun", async () => {
    const { unitId } = await createUnit();
    await gradeAtCapacity(unitId);
    const first = await runUsageBilling(dependencies, { hour, trigger: "manual" });
    expect(first.charged).toBe(1);

    const second = await runUsageBilling(dependencies, { hour, trigger: "manual" });

    expect(second.charged).toBe(0);
    expect(second.details.pendingCharges).toBe(0);
    expect(await usageCharges(unitId)).toHaveLength(1);
  });
});

describe("chargeWithRetry", () => {
  const request = {
    userId: "4b0f3c1e-8f7a-4a51-9d0e-3c5b8f2a1d44",
    idempotencyKey: "retry-test-invalid",
    price: { kind: "finite" as const, amount: 5n },
    kind: "usage",
    description: "test",
    metadata: {},
  };

  it("classifies ledger race errors as retryable", () => {
    expect(isRetryableChargeError(new InsufficientFundsError("u", 1n, 2n, "x"))).toBe(true);
    expect(isRetryableChargeError(new IdempotencyConflictError("k", 1))).toBe(true);
    expect(isRetryableChargeError(new Error("connection reset"))).toBe(false);
  });

  it("rejects an invalid attempt count", async () => {
    await expect(chargeWithRetry(database.db, request, 0)).rejects.toThrow(
      /Invalid maxAttempts 0: expected a whole number, 1 or more/,
    );
  });

  it("raises other errors at once", async () => {
    const retries: number[] = [];
    const invalid = { ...request, userId: "not-a-uuid" };

    await expect(
      chargeWithRetry(database.db, invalid, 3, (attempt) => {
        retries.push(attempt);
      }),
    ).rejects.toThrow(/Invalid ledger request field userId/);
    expect(retries).toEqual([]);
  });
});
