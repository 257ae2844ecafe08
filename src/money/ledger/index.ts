export {
  openSystemAccount,
  openUserAccounts,
  readUserBalances,
  type UserAccounts,
  type UserBalances,
} from "./accounts.ts";
export {
  type AccountMismatch,
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidLedgerRequestError,
  LedgerAccountNotFoundError,
  LedgerIntegrityError,
  type TransactionMismatch,
} from "./errors.ts";
export {
  HISTORY_DEFAULT_LIMIT,
  HISTORY_MAX_LIMIT,
  type HistoryItem,
  type HistoryPage,
  type HistoryQuery,
  type LedgerItem,
  listUserHistory,
  readUserLedger,
  type UserLedger,
} from "./history.ts";
export { type PostedTransaction, postTransaction } from "./post.ts";
export { type SpendDetails, spendTokens } from "./spend.ts";
export type { JsonValue, PostingEntry, PostingRequest } from "./validation.ts";
export { type LedgerVerification, verifyLedger } from "./verify.ts";
