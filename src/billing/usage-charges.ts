/**
 * The three phases of an hourly usage run: load the hour's grades with what earlier attempts
 * settled, price each yellow or red Unit, and post the charges. Posting runs the owners in
 * parallel and each owner's Units one after another, so the Units of one user never race for
 * that user's balance within a run.
 */
import { eq, sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { ledgerTransactions, unitBillingState, unitGrades, units } from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import {
  type BillingColour,
  type BillingSettings,
  billingColour,
  type UsageCharge,
  type UsagePriceSettings,
  unitHourCharge,
  usagePostingKey,
} from "../money/billing/index.ts";
import { chargeWithRetry, isRetryableChargeError } from "./charge-retry.ts";
import { type StoppingDependencies, stopUnit } from "./stopping.ts";

const logger = getNodeLogger("money", "billing");

/** Counts and lists of one billing run, stored in its `billing_runs` row. */
export interface RunTally {
  charged: number;
  total: bigint;
  /**
   * Units or users whose charge failed. `retryable` failures make the job bill the period again
   * after the retry delay. The others, such as a Unit without an owner, fail the same way again.
   */
  failures: { id: string; error: string; retryable: boolean }[];
  stopped: string[];
  /** Further attempts of charges that lost a race with a concurrent spend. */
  retries: number;
}

export function createTally(): RunTally {
  return { charged: 0, total: 0n, failures: [], stopped: [], retries: 0 };
}

/** One Unit's grade of the hour, with the state that earlier attempts of the hour left. */
export interface UsageGrade {
  unitId: string;
  percentile: number;
  messages: number;
  ownerId: string | null;
  /** The charge key that stopped the Unit, if it is stopped. */
  stopKey: string | null;
  /** Whether the ledger has the charge of this Unit and hour already. */
  chargePosted: boolean;
  /** Whether that charge took the owner's whole balance, so the Unit must be stopped. */
  chargeExhausted: boolean;
}

/** Loads every grade of `hour` with whether its charge is posted and whether the Unit stopped. */
export async function loadUsageGrades(db: Database, hour: Date): Promise<UsageGrade[]> {
  // The join finds the charge by its idempotency key, so a rerun skips settled Units without a
  // ledger query per Unit. The key has the form of usagePostingKey.
  const keySuffix = `:${hour.toISOString()}`;
  const rows = await db
    .select({
      unitId: unitGrades.unitId,
      percentile: unitGrades.percentile,
      messages: unitGrades.messages,
      ownerId: units.ownerId,
      stopKey: unitBillingState.chargeKey,
      chargeId: ledgerTransactions.id,
      chargeExhausted: sql<boolean | null>`(${ledgerTransactions.metadata}->>'exhausted')::boolean`,
    })
    .from(unitGrades)
    .innerJoin(units, eq(units.id, unitGrades.unitId))
    .leftJoin(unitBillingState, eq(unitBillingState.unitId, unitGrades.unitId))
    .leftJoin(
      ledgerTransactions,
      eq(
        ledgerTransactions.idempotencyKey,
        sql`'usage:' || ${unitGrades.unitId}::text || ${keySuffix}`,
      ),
    )
    .where(eq(unitGrades.hour, hour));
  return rows.map((row) => ({
    unitId: row.unitId,
    percentile: row.percentile,
    messages: row.messages,
    ownerId: row.ownerId,
    stopKey: row.stopKey,
    chargePosted: row.chargeId !== null,
    chargeExhausted: row.chargeExhausted === true,
  }));
}

/** A priced charge of one Unit's hour, not posted yet. */
export interface PendingUsageCharge {
  unitId: string;
  ownerId: string;
  key: string;
  colour: BillingColour;
  charge: UsageCharge;
}

/**
 * Prices the grades that still need a charge. Green Units, Units charged by an earlier attempt
 * and Units stopped by this hour's charge are skipped. A Unit without an owner, or with an
 * invalid message count, is added to the tally's failures as not retryable.
 */
export function priceUsageCharges(
  grades: readonly UsageGrade[],
  hour: Date,
  settings: BillingSettings,
  priceSettings: UsagePriceSettings,
  tally: RunTally,
): PendingUsageCharge[] {
  const pending: PendingUsageCharge[] = [];
  for (const grade of grades) {
    const colour = billingColour(grade.percentile, settings);
    if (colour === "green") continue;
    const key = usagePostingKey(grade.unitId, hour);
    // A Unit stopped by this very charge was settled by an earlier attempt.
    if (grade.stopKey === key) continue;
    // An exhausted charge without the stop still goes through chargeUser, which returns
    // `already_charged`, so the Unit is stopped now.
    if (grade.chargePosted && !grade.chargeExhausted) continue;
    try {
      if (grade.ownerId === null) throw new Error(`Unit ${grade.unitId} has no owner to charge`);
      const charge = unitHourCharge(BigInt(grade.messages), priceSettings);
      pending.push({ unitId: grade.unitId, ownerId: grade.ownerId, key, colour, charge });
    } catch (error) {
      logger.error("Pricing Unit {unitId} for hour {hour} failed: {error}", {
        unitId: grade.unitId,
        hour: hour.toISOString(),
        error,
      });
      tally.failures.push({ id: grade.unitId, error: String(error), retryable: false });
    }
  }
  return pending;
}

export interface PostingOptions {
  hour: Date;
  /** Owners charged in parallel; each needs one database connection. */
  concurrency: number;
  /** Attempts of one charge, the first one included. */
  maxAttempts: number;
}

/**
 * Posts the charges, `options.concurrency` owners at a time, and stops the Units whose owners
 * cannot pay. A charge that still fails after its attempts is added to the tally's failures as
 * retryable, and the other charges go on.
 */
export async function postUsageCharges(
  dependencies: StoppingDependencies,
  charges: readonly PendingUsageCharge[],
  options: PostingOptions,
  tally: RunTally,
): Promise<void> {
  const byOwner = new Map<string, PendingUsageCharge[]>();
  for (const charge of charges) {
    const list = byOwner.get(charge.ownerId);
    if (list === undefined) byOwner.set(charge.ownerId, [charge]);
    else list.push(charge);
  }
  const owners = [...byOwner.values()];
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < owners.length; index = next++) {
      for (const charge of owners[index] as PendingUsageCharge[]) {
        await postUsageCharge(dependencies, charge, options, tally);
      }
    }
  };
  const workers = Math.min(options.concurrency, owners.length);
  await Promise.all(Array.from({ length: workers }, worker));
}

async function postUsageCharge(
  dependencies: StoppingDependencies,
  pending: PendingUsageCharge,
  options: PostingOptions,
  tally: RunTally,
): Promise<void> {
  const { unitId, ownerId, key, charge } = pending;
  const hour = options.hour.toISOString();
  try {
    const { outcome } = await chargeWithRetry(
      dependencies.db,
      {
        userId: ownerId,
        idempotencyKey: key,
        price: charge.price,
        kind: "usage",
        description: `Load of Unit ${unitId} in ${hour}`,
        metadata: {
          unitId,
          hour,
          colour: pending.colour,
          messages: charge.messages.toString(),
          freeMessages: charge.freeMessages.toString(),
          capacityMessages: charge.capacityMessages.toString(),
        },
      },
      options.maxAttempts,
      (attempt, error) => {
        tally.retries += 1;
        logger.warn(
          "Charging Unit {unitId} for hour {hour} lost a race with another spend, retrying (attempt {attempt} failed): {error}",
          { unitId, hour, attempt, error },
        );
      },
    );
    if (outcome.status === "charged") {
      tally.charged += 1;
      tally.total += outcome.charged;
    }
    if (outcome.status === "exhausted") {
      if (outcome.charged > 0n) tally.charged += 1;
      tally.total += outcome.charged;
    }
    const exhausted =
      outcome.status === "exhausted" || (outcome.status === "already_charged" && outcome.exhausted);
    if (exhausted) {
      await stopUnit(dependencies, {
        unitId,
        ownerId,
        reason: charge.price.kind === "unbounded" ? "load_at_capacity" : "balance_exhausted",
        chargeKey: key,
        charged: outcome.status === "exhausted" ? outcome.charged : 0n,
      });
      tally.stopped.push(unitId);
    }
  } catch (error) {
    logger.error("Charging Unit {unitId} for hour {hour} failed: {error}", {
      unitId,
      hour,
      retryable: isRetryableChargeError(error),
      error,
    });
    tally.failures.push({ id: unitId, error: String(error), retryable: true });
  }
}
