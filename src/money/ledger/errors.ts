/** Errors of the ledger. Each message names the value at fault and what to do about it. */

/** Raised for a posting, spend or history request that is invalid before the database is read. */
export class InvalidLedgerRequestError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`Invalid ledger request field ${field}: ${message}`);
    this.name = "InvalidLedgerRequestError";
    this.field = field;
  }
}

/** Raised when a posting names accounts that do not exist. */
export class LedgerAccountNotFoundError extends Error {
  readonly accountIds: readonly number[];

  constructor(accountIds: readonly number[]) {
    super(
      `Ledger account${accountIds.length === 1 ? "" : "s"} ${accountIds.join(", ")} not found: ` +
        "open accounts with openUserAccounts or openSystemAccount before posting to them",
    );
    this.name = "LedgerAccountNotFoundError";
    this.accountIds = accountIds;
  }
}

/**
 * Raised when a posting or spend would take a user's balance below zero. Nothing is written.
 * `available` and `requested` are in minor units.
 */
export class InsufficientFundsError extends Error {
  readonly userId: string;
  readonly available: bigint;
  readonly requested: bigint;

  constructor(userId: string, available: bigint, requested: bigint, fundsSource: string) {
    super(
      `Insufficient funds: ${fundsSource} of user ${userId} has ${available}, but ${requested} was requested. ` +
        "Top up the balance or post a smaller amount.",
    );
    this.name = "InsufficientFundsError";
    this.userId = userId;
    this.available = available;
    this.requested = requested;
  }
}

/** Raised when an idempotency key is reused for a posting with different content. */
export class IdempotencyConflictError extends Error {
  readonly idempotencyKey: string;
  readonly transactionId: number;

  constructor(idempotencyKey: string, transactionId: number) {
    super(
      `Idempotency key ${JSON.stringify(idempotencyKey)} already belongs to ledger transaction ` +
        `${transactionId} with different content: use a new key for a different posting`,
    );
    this.name = "IdempotencyConflictError";
    this.idempotencyKey = idempotencyKey;
    this.transactionId = transactionId;
  }
}

/** An account whose stored balance differs from the sum of its entries. */
export interface AccountMismatch {
  accountId: number;
  balance: bigint;
  entriesSum: bigint;
}

/** A transaction whose entries do not sum to zero, or that has fewer than two entries. */
export interface TransactionMismatch {
  transactionId: number;
  idempotencyKey: string;
  entriesSum: bigint;
  entryCount: number;
}

/** Raised by `verifyLedger` with every mismatch it found. */
export class LedgerIntegrityError extends Error {
  readonly accounts: readonly AccountMismatch[];
  readonly transactions: readonly TransactionMismatch[];

  constructor(accounts: readonly AccountMismatch[], transactions: readonly TransactionMismatch[]) {
    const lines = [
      ...accounts.map(
        (mismatch) =>
          `account ${mismatch.accountId} has balance ${mismatch.balance}, but its entries sum to ${mismatch.entriesSum}`,
      ),
      ...transactions.map(
        (mismatch) =>
          `transaction ${mismatch.transactionId} (key ${JSON.stringify(mismatch.idempotencyKey)}) has ` +
          `${mismatch.entryCount} entries summing to ${mismatch.entriesSum}, expected at least 2 summing to 0`,
      ),
    ];
    super(
      `Ledger verification failed with ${lines.length} mismatch${lines.length === 1 ? "" : "es"}:\n  - ` +
        `${lines.join("\n  - ")}\n` +
        "Stop billing and payments, and find what wrote these rows outside postTransaction.",
    );
    this.name = "LedgerIntegrityError";
    this.accounts = accounts;
    this.transactions = transactions;
  }
}
