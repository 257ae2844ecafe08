import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  check,
  index,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, sqlList, updatedAt } from "./common.ts";
import { users } from "./users.ts";

/**
 * Double-entry ledger of tokens. Amounts are integers in minor units of the account's currency.
 * Only `postTransaction` in `src/money/ledger/post.ts` writes these tables. The triggers in
 * `migrations/postgres-repeatable/ledger.sql` make entries and transactions append-only and reject
 * a commit in which a transaction's entries do not sum to zero.
 */

export const LEDGER_OWNER_KINDS = ["user", "system"] as const;
export type LedgerOwnerKind = (typeof LEDGER_OWNER_KINDS)[number];

/** Accounts of one user: free tokens (granted monthly, expire) and paid tokens. */
export const USER_ACCOUNT_KINDS = ["user_free", "user_paid"] as const;
/**
 * Accounts of the node: the usage revenue, the source of granted free tokens, money received
 * from payment providers before it is credited, refunds paid out, the source of the monthly free
 * allowance, and the free tokens that expired at the end of a month.
 */
export const SYSTEM_ACCOUNT_KINDS = [
  "revenue_usage",
  "faucet",
  "payments_clearing",
  "refunds",
  "free_allowance",
  "expired_free",
] as const;
export const LEDGER_ACCOUNT_KINDS = [...USER_ACCOUNT_KINDS, ...SYSTEM_ACCOUNT_KINDS] as const;
export type UserAccountKind = (typeof USER_ACCOUNT_KINDS)[number];
export type SystemAccountKind = (typeof SYSTEM_ACCOUNT_KINDS)[number];
export type LedgerAccountKind = (typeof LEDGER_ACCOUNT_KINDS)[number];

export const LEDGER_CURRENCIES = ["token"] as const;
export type LedgerCurrency = (typeof LEDGER_CURRENCIES)[number];

/**
 * One account per (owner, kind, currency). `balance` always equals the sum of the account's
 * entries: the posting function changes both in one database transaction, and `verifyLedger`
 * recomputes it. User accounts never go below zero, and system accounts may.
 */
export const ledgerAccounts = pgTable(
  "ledger_accounts",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    ownerKind: text("owner_kind", { enum: LEDGER_OWNER_KINDS }).notNull(),
    /** The user of a `user` account; null for a `system` account. */
    ownerId: uuid("owner_id").references(() => users.id, { onDelete: "restrict" }),
    kind: text("kind", { enum: LEDGER_ACCOUNT_KINDS }).notNull(),
    currency: text("currency", { enum: LEDGER_CURRENCIES }).notNull().default("token"),
    balance: bigint("balance", { mode: "bigint" }).notNull().default(sql`0`),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    unique("ledger_accounts_owner_kind_currency_unique")
      .on(table.ownerKind, table.ownerId, table.kind, table.currency)
      .nullsNotDistinct(),
    check(
      "ledger_accounts_owner_kind_check",
      sql`${table.ownerKind} in (${sqlList(LEDGER_OWNER_KINDS)})`,
    ),
    check(
      "ledger_accounts_owner_id_check",
      sql`(${table.ownerKind} = 'user') = (${table.ownerId} is not null)`,
    ),
    check(
      "ledger_accounts_kind_check",
      sql`(${table.ownerKind} = 'user' and ${table.kind} in (${sqlList(USER_ACCOUNT_KINDS)})) or (${table.ownerKind} = 'system' and ${table.kind} in (${sqlList(SYSTEM_ACCOUNT_KINDS)}))`,
    ),
    check(
      "ledger_accounts_currency_check",
      sql`${table.currency} in (${sqlList(LEDGER_CURRENCIES)})`,
    ),
    check(
      "ledger_accounts_user_balance_non_negative",
      sql`${table.ownerKind} <> 'user' or ${table.balance} >= 0`,
    ),
  ],
);

/**
 * One posting. `idempotency_key` is unique, so a retried posting is stored once, and
 * `content_hash` (SHA-256 of the request: kind, description, metadata and entries, or the user and
 * amount of a spend) distinguishes a true retry from a different posting that reuses the key.
 */
export const ledgerTransactions = pgTable(
  "ledger_transactions",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    idempotencyKey: text("idempotency_key")
      .notNull()
      .unique("ledger_transactions_idempotency_key_unique"),
    kind: text("kind").notNull(),
    description: text("description"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>().notNull().default({}),
    contentHash: text("content_hash").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    check("ledger_transactions_idempotency_key_not_empty", sql`${table.idempotencyKey} <> ''`),
    check("ledger_transactions_kind_not_empty", sql`${table.kind} <> ''`),
  ],
);

/** The signed amounts of a transaction, one row per account it touches. */
export const ledgerEntries = pgTable(
  "ledger_entries",
  {
    transactionId: bigint("transaction_id", { mode: "number" })
      .notNull()
      .references(() => ledgerTransactions.id, { onDelete: "restrict" }),
    accountId: bigint("account_id", { mode: "number" })
      .notNull()
      .references(() => ledgerAccounts.id, { onDelete: "restrict" }),
    /** Positive adds to the account's balance, negative takes from it. */
    amount: bigint("amount", { mode: "bigint" }).notNull(),
  },
  (table) => [
    primaryKey({ name: "ledger_entries_pkey", columns: [table.transactionId, table.accountId] }),
    check("ledger_entries_amount_not_zero", sql`${table.amount} <> 0`),
    index("ledger_entries_account_transaction_idx").on(table.accountId, table.transactionId),
  ],
);

export type LedgerAccount = typeof ledgerAccounts.$inferSelect;
export type LedgerTransactionRow = typeof ledgerTransactions.$inferSelect;
export type LedgerEntryRow = typeof ledgerEntries.$inferSelect;
