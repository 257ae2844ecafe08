import type { DatabaseLike } from "../../db/client.ts";
import { InsufficientFundsError, readUserBalances, spendTokens } from "../ledger/index.ts";
import { findTransaction } from "../ledger/post.ts";
import type { JsonValue } from "../ledger/validation.ts";
import type { LoadPrice } from "../pricing.ts";

/** Returns the ledger idempotency key of the charge of a Unit's hour. */
export function usagePostingKey(unitId: string, hour: Date): string {
  return `usage:${unitId}:${hour.toISOString()}`;
}

/** Returns the ledger idempotency key of a user's aggregation topics charge in a UTC day. */
export function aggregationPostingKey(userId: string, day: Date): string {
  return `aggregation:${userId}:${day.toISOString().slice(0, 10)}`;
}

export interface ChargeRequest {
  userId: string;
  idempotencyKey: string;
  price: LoadPrice;
  /** Transaction kind, such as `usage` or `aggregation`. */
  kind: string;
  description: string;
  metadata: Record<string, JsonValue>;
}

/**
 * The outcome of a charge. `exhausted` means the balance could not pay the price, so the whole
 * balance was charged (`charged` may be 0) and the item's Unit must stop. `already_charged` is a
 * replay of an earlier charge, and `exhausted` repeats whether that charge exhausted the balance.
 */
export type ChargeOutcome =
  | { status: "free" }
  | { status: "charged"; charged: bigint; transactionId: number }
  | {
      status: "exhausted";
      charged: bigint;
      requested: bigint | "unbounded";
      transactionId: number | null;
    }
  | { status: "already_charged"; exhausted: boolean; transactionId: number };

/** Returns the user's free plus paid tokens; 0 when the user has no accounts yet. */
export async function userBalance(db: DatabaseLike, userId: string): Promise<bigint> {
  const { free, paid } = await readUserBalances(db, userId);
  return free + paid;
}

/**
 * Charges `request.price` once per idempotency key. An unbounded price, or a finite one above
 * the balance, charges the whole balance instead and returns `exhausted`. Raises the ledger's
 * errors when the balance shrinks between reading and charging (a concurrent spend); a retry
 * then charges from the new balance.
 */
export async function chargeUser(db: DatabaseLike, request: ChargeRequest): Promise<ChargeOutcome> {
  const earlier = await findTransaction(db, request.idempotencyKey);
  if (earlier !== undefined) {
    return {
      status: "already_charged",
      exhausted: earlier.metadata.exhausted === true,
      transactionId: earlier.id,
    };
  }

  const { price } = request;
  if (price.kind === "finite" && price.amount === 0n) return { status: "free" };
  if (price.kind === "finite") {
    try {
      const posted = await spendTokens(db, request.userId, price.amount, request.idempotencyKey, {
        kind: request.kind,
        description: request.description,
        metadata: { ...request.metadata, requested: price.amount.toString(), exhausted: false },
      });
      return { status: "charged", charged: price.amount, transactionId: posted.id };
    } catch (error) {
      if (!(error instanceof InsufficientFundsError)) throw error;
    }
  }

  const requested = price.kind === "finite" ? price.amount : ("unbounded" as const);
  const balance = await userBalance(db, request.userId);
  if (balance === 0n) return { status: "exhausted", charged: 0n, requested, transactionId: null };
  const posted = await spendTokens(db, request.userId, balance, request.idempotencyKey, {
    kind: request.kind,
    description: request.description,
    metadata: { ...request.metadata, requested: requested.toString(), exhausted: true },
  });
  return { status: "exhausted", charged: balance, requested, transactionId: posted.id };
}
