/**
 * The plan that `test/money-worker.ts` runs in a child process: Crypto Pay webhooks and spends,
 * in order. The money concurrency test writes it as JSON and kills the child while it holds a
 * transaction open.
 */

export type WorkerOperation =
  | { kind: "webhook"; body: string; signature: string }
  | { kind: "spend"; userId: string; amount: string; idempotencyKey: string };

export interface WorkerPlan {
  databaseUrl: string;
  cryptoPayApiUrl: string;
  cryptoPayToken: string;
  operations: WorkerOperation[];
  /**
   * Index of the operation that the worker runs inside a transaction it never commits. After that
   * operation it prints `holding <index>` and waits to be killed.
   */
  holdAt: number;
}

/** Line the worker prints after each committed operation: `done <index> <outcome>`. */
export const DONE_PREFIX = "done";
/** Line the worker prints when it holds the uncommitted transaction: `holding <index>`. */
export const HOLDING_PREFIX = "holding";

/**
 * Outcomes of one operation: `credited` and `already_credited` for a webhook, `posted` and
 * `replayed` for a spend, `insufficient` for a spend the balance could not cover.
 */
export type WorkerOutcome =
  | "credited"
  | "already_credited"
  | "posted"
  | "replayed"
  | "insufficient";
