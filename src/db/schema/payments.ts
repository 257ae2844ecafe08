import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  smallint,
  text,
  timestamp,
  unique,
  uuid,
} from "drizzle-orm/pg-core";
import { createdAt, sqlList, updatedAt } from "./common.ts";
import { ledgerTransactions } from "./ledger.ts";
import { users } from "./users.ts";

/**
 * Orders of paid tokens and the discrepancies that reconciliation found. Only
 * `src/money/payments/` writes these tables, and it changes an order's state in the same database
 * transaction as the ledger posting that goes with it.
 */

export const PAYMENT_PROVIDERS = ["telegram_stars", "cryptopay"] as const;
export type PaymentProviderId = (typeof PAYMENT_PROVIDERS)[number];

/**
 * `created`: the invoice is out and unpaid. `paid`: the provider confirmed the payment and the
 * tokens were credited. `refunded`: the payment was returned and the tokens taken back.
 * `expired`: unpaid past `expires_at`. `failed`: the provider rejected the invoice.
 */
export const PAYMENT_ORDER_STATES = ["created", "paid", "refunded", "expired", "failed"] as const;
export type PaymentOrderState = (typeof PAYMENT_ORDER_STATES)[number];

export const paymentOrders = pgTable(
  "payment_orders",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "restrict" }),
    provider: text("provider", { enum: PAYMENT_PROVIDERS }).notNull(),
    /** Tokens credited on payment, in the ledger's minor units. */
    tokens: bigint("tokens", { mode: "bigint" }).notNull(),
    /** The price in minor units of `price_currency`: `price_amount / 10^price_scale` units. */
    priceAmount: bigint("price_amount", { mode: "bigint" }).notNull(),
    /** `XTR` for Telegram Stars, or the Crypto Pay asset such as `USDT`. */
    priceCurrency: text("price_currency").notNull(),
    /** Decimal places of `price_amount`: 0 for Stars. */
    priceScale: smallint("price_scale").notNull(),
    state: text("state", { enum: PAYMENT_ORDER_STATES }).notNull().default("created"),
    /** The provider's id of the invoice, where it has one (the Crypto Pay `invoice_id`). */
    providerInvoiceId: text("provider_invoice_id"),
    /** The provider's id of the payment: `telegram_payment_charge_id`, or the Crypto Pay invoice id. */
    providerPaymentId: text("provider_payment_id"),
    /** The payer at the provider: the Telegram user id for Stars, which a refund needs. */
    payerRef: text("payer_ref"),
    creditTransactionId: bigint("credit_transaction_id", { mode: "number" }).references(
      () => ledgerTransactions.id,
      { onDelete: "restrict" },
    ),
    refundTransactionId: bigint("refund_transaction_id", { mode: "number" }).references(
      () => ledgerTransactions.id,
      { onDelete: "restrict" },
    ),
    failureReason: text("failure_reason"),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    paidAt: timestamp("paid_at", { withTimezone: true }),
    refundedAt: timestamp("refunded_at", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    unique("payment_orders_provider_invoice_unique").on(table.provider, table.providerInvoiceId),
    unique("payment_orders_provider_payment_unique").on(table.provider, table.providerPaymentId),
    check(
      "payment_orders_provider_check",
      sql`${table.provider} in (${sqlList(PAYMENT_PROVIDERS)})`,
    ),
    check("payment_orders_state_check", sql`${table.state} in (${sqlList(PAYMENT_ORDER_STATES)})`),
    check("payment_orders_tokens_positive", sql`${table.tokens} > 0`),
    check("payment_orders_price_positive", sql`${table.priceAmount} > 0`),
    check("payment_orders_price_scale_check", sql`${table.priceScale} between 0 and 18`),
    check(
      "payment_orders_paid_has_payment",
      sql`${table.state} not in ('paid', 'refunded') or (${table.providerPaymentId} is not null and ${table.creditTransactionId} is not null and ${table.paidAt} is not null)`,
    ),
    check(
      "payment_orders_refunded_has_refund",
      sql`${table.state} <> 'refunded' or (${table.refundTransactionId} is not null and ${table.refundedAt} is not null)`,
    ),
    index("payment_orders_state_expires_idx").on(table.state, table.expiresAt),
    index("payment_orders_user_idx").on(table.userId, table.createdAt),
  ],
);

/**
 * Kinds of discrepancy between a provider, `payment_orders` and the ledger. Each is explained in
 * `docs/payments.md`.
 */
export const PAYMENT_MISMATCH_KINDS = [
  "unknown_order",
  "provider_mismatch",
  "amount_mismatch",
  "duplicate_payment",
  "missing_at_provider",
  "refund_not_applied",
  "ledger_missing",
] as const;
export type PaymentMismatchKind = (typeof PAYMENT_MISMATCH_KINDS)[number];

/** Discrepancies found by payment handling and reconciliation, one row per distinct finding. */
export const paymentMismatches = pgTable(
  "payment_mismatches",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    provider: text("provider", { enum: PAYMENT_PROVIDERS }).notNull(),
    kind: text("kind", { enum: PAYMENT_MISMATCH_KINDS }).notNull(),
    /** `<provider>:<kind>:<provider payment id>`, so a finding seen again updates its row. */
    fingerprint: text("fingerprint").notNull().unique("payment_mismatches_fingerprint_unique"),
    orderId: uuid("order_id").references(() => paymentOrders.id, { onDelete: "set null" }),
    providerPaymentId: text("provider_payment_id"),
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
    seenCount: integer("seen_count").notNull().default(1),
    firstSeenAt: timestamp("first_seen_at", { withTimezone: true }).notNull().defaultNow(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    check(
      "payment_mismatches_provider_check",
      sql`${table.provider} in (${sqlList(PAYMENT_PROVIDERS)})`,
    ),
    check(
      "payment_mismatches_kind_check",
      sql`${table.kind} in (${sqlList(PAYMENT_MISMATCH_KINDS)})`,
    ),
  ],
);

export type PaymentOrder = typeof paymentOrders.$inferSelect;
export type PaymentMismatch = typeof paymentMismatches.$inferSelect;
