/**
 * Stopping and resuming Units for billing. A Unit is stopped when its owner's balance cannot
 * pay a charge, or when its load reaches the capacity. It is resumed when its owner's balance
 * is above zero again, after a payment, a faucet grant or the monthly allowance.
 *
 * The state is written first and the broker is changed after it. A broker call that fails
 * leaves `broker_applied` false, and `applyPendingBrokerChanges` tries again at the next check.
 */
import { and, eq, inArray } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import {
  type UnitStopReason,
  unitBillingState,
  unitNodes,
  units,
  userNotices,
} from "../db/schema/index.ts";
import { getNodeLogger } from "../logging.ts";
import { userBalance } from "../money/billing/index.ts";
import type { UnitAccessControl, UnitTopics } from "./unit-access.ts";

const logger = getNodeLogger("money", "billing");

export interface StoppingDependencies {
  db: Database;
  access: UnitAccessControl;
}

export interface StopRequest {
  unitId: string;
  ownerId: string;
  reason: UnitStopReason;
  /** The charge that stopped the Unit, such as `usage:<unit>:<hour>`. */
  chargeKey: string;
  /** Tokens charged by that charge, for the notice. */
  charged: bigint;
}

/**
 * Notice texts in Russian and English. They promise MQTT access back only when the broker
 * driver revokes it, because with the driver `off` the Unit keeps its access while stopped.
 */
function stopNoticeTexts(
  unitName: string,
  reason: UnitStopReason,
  charged: bigint,
  revokesAccess: boolean,
) {
  const cause =
    reason === "load_at_capacity"
      ? {
          ru:
            `Юнит ${unitName} остановлен: его нагрузка достигла ёмкости инстанса, где цена не ограничена. ` +
            `Списан весь баланс (${charged} токенов).`,
          en:
            `Unit ${unitName} is stopped: its load reached the instance's capacity, where the price is unbounded. ` +
            `The whole balance (${charged} tokens) was charged.`,
        }
      : {
          ru: `Юнит ${unitName} остановлен: на балансе не хватило токенов для почасовой оплаты (списано ${charged}).`,
          en: `Unit ${unitName} is stopped: the balance could not pay its hourly charge (${charged} tokens charged).`,
        };
  const remedy = revokesAccess
    ? {
        ru: "Пополните баланс (например, командой /buy в Telegram-боте узла), и Юнит снова получит доступ к MQTT.",
        en: "Top up the balance (for example with /buy in the node's Telegram bot) and the Unit gets its MQTT access back.",
      }
    : {
        ru: "Пополните баланс (например, командой /buy в Telegram-боте узла), чтобы возобновить Юнит.",
        en: "Top up the balance (for example with /buy in the node's Telegram bot) to resume the Unit.",
      };
  return { ru: `${cause.ru} ${remedy.ru}`, en: `${cause.en} ${remedy.en}` };
}

async function unitTopics(db: Database, unitId: string): Promise<UnitTopics> {
  const nodes = await db
    .select({ id: unitNodes.id })
    .from(unitNodes)
    .where(eq(unitNodes.unitId, unitId));
  return { unitId, unitNodeIds: nodes.map((node) => node.id) };
}

/**
 * Marks the Unit stopped, stores a notice for its owner and revokes its broker access.
 * Idempotent: a Unit stopped by the same charge is not noticed twice.
 */
export async function stopUnit(
  dependencies: StoppingDependencies,
  request: StopRequest,
): Promise<void> {
  const { db } = dependencies;
  const [unit] = await db
    .select({ name: units.name })
    .from(units)
    .where(eq(units.id, request.unitId));
  const texts = stopNoticeTexts(
    unit?.name ?? request.unitId,
    request.reason,
    request.charged,
    dependencies.access.kind !== "off",
  );

  await db.transaction(async (tx) => {
    await tx
      .insert(unitBillingState)
      .values({
        unitId: request.unitId,
        state: "stopped",
        reason: request.reason,
        chargeKey: request.chargeKey,
        brokerApplied: false,
      })
      .onConflictDoUpdate({
        target: unitBillingState.unitId,
        set: {
          state: "stopped",
          reason: request.reason,
          chargeKey: request.chargeKey,
          since: new Date(),
          brokerApplied: false,
          brokerError: null,
        },
      });
    await tx
      .insert(userNotices)
      .values({
        userId: request.ownerId,
        key: `unit_stopped:${request.chargeKey}`,
        kind: "unit_stopped",
        textRu: texts.ru,
        textEn: texts.en,
        metadata: {
          unitId: request.unitId,
          reason: request.reason,
          charged: request.charged.toString(),
        },
      })
      .onConflictDoNothing();
  });
  logger.warn("Stopped Unit {unitId} of user {userId}: {reason} (charge {chargeKey})", {
    unitId: request.unitId,
    userId: request.ownerId,
    reason: request.reason,
    chargeKey: request.chargeKey,
  });
  await applyBrokerChange(dependencies, request.unitId, "stopped");
}

/**
 * Resumes the user's stopped Units when the user's balance is above zero, and restores their
 * broker access. Returns the resumed Unit ids. Payment code and the billing job call it after a
 * credit; calling it at any other time is harmless.
 */
export async function resumeUnits(
  dependencies: StoppingDependencies,
  userId: string,
): Promise<string[]> {
  const { db } = dependencies;
  if ((await userBalance(db, userId)) <= 0n) return [];
  const stopped = await db
    .select({
      unitId: unitBillingState.unitId,
      name: units.name,
      chargeKey: unitBillingState.chargeKey,
    })
    .from(unitBillingState)
    .innerJoin(units, eq(units.id, unitBillingState.unitId))
    .where(and(eq(unitBillingState.state, "stopped"), eq(units.ownerId, userId)));
  const resumed: string[] = [];
  for (const { unitId, name, chargeKey } of stopped) {
    const updated = await db.transaction(async (tx) => {
      const rows = await tx
        .update(unitBillingState)
        .set({
          state: "active",
          reason: null,
          since: new Date(),
          brokerApplied: false,
          brokerError: null,
        })
        .where(and(eq(unitBillingState.unitId, unitId), eq(unitBillingState.state, "stopped")))
        .returning({ unitId: unitBillingState.unitId });
      if (rows.length > 0) {
        // One notice per stop: the key names the charge that stopped the Unit.
        await tx
          .insert(userNotices)
          .values({
            userId,
            key: `unit_resumed:${chargeKey ?? unitId}`,
            kind: "unit_resumed",
            textRu: `Юнит ${name} снова работает: баланс больше нуля.`,
            textEn: `Unit ${name} is running again: the balance is above zero.`,
            metadata: { unitId },
          })
          .onConflictDoNothing();
      }
      return rows;
    });
    if (updated.length === 0) continue;
    logger.info("Resumed Unit {unitId} of user {userId}: the balance is above zero", {
      unitId,
      userId,
    });
    resumed.push(unitId);
    await applyBrokerChange(dependencies, unitId, "active");
  }
  return resumed;
}

/** Resumes the stopped Units of every owner whose balance is above zero again. */
export async function resumeFundedOwners(dependencies: StoppingDependencies): Promise<string[]> {
  const owners = await dependencies.db
    .selectDistinct({ ownerId: units.ownerId })
    .from(unitBillingState)
    .innerJoin(units, eq(units.id, unitBillingState.unitId))
    .where(eq(unitBillingState.state, "stopped"));
  const resumed: string[] = [];
  for (const { ownerId } of owners) {
    if (ownerId !== null) resumed.push(...(await resumeUnits(dependencies, ownerId)));
  }
  return resumed;
}

/** Applies every state change that the broker has not accepted yet. */
export async function applyPendingBrokerChanges(dependencies: StoppingDependencies): Promise<void> {
  const pending = await dependencies.db
    .select({ unitId: unitBillingState.unitId, state: unitBillingState.state })
    .from(unitBillingState)
    .where(eq(unitBillingState.brokerApplied, false));
  for (const row of pending) await applyBrokerChange(dependencies, row.unitId, row.state);
}

async function applyBrokerChange(
  dependencies: StoppingDependencies,
  unitId: string,
  state: "active" | "stopped",
): Promise<void> {
  const { db, access } = dependencies;
  let brokerError: string | null = null;
  try {
    const topics = await unitTopics(db, unitId);
    if (state === "stopped") await access.revoke(topics);
    else await access.restore(topics);
  } catch (error) {
    brokerError = String(error);
    logger.error("Changing the broker access of Unit {unitId} to {state} failed: {error}", {
      unitId,
      state,
      error,
    });
  }
  await db
    .update(unitBillingState)
    .set({ brokerApplied: brokerError === null, brokerError })
    .where(and(eq(unitBillingState.unitId, unitId), eq(unitBillingState.state, state)));
}

/** Returns the ids of the listed Units that are stopped. */
export async function stoppedUnitIds(
  db: Database,
  unitIds: readonly string[],
): Promise<Set<string>> {
  if (unitIds.length === 0) return new Set();
  const rows = await db
    .select({ unitId: unitBillingState.unitId })
    .from(unitBillingState)
    .where(and(inArray(unitBillingState.unitId, unitIds), eq(unitBillingState.state, "stopped")));
  return new Set(rows.map((row) => row.unitId));
}
