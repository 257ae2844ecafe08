CREATE TABLE "ledger_accounts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"owner_kind" text NOT NULL,
	"owner_id" uuid,
	"kind" text NOT NULL,
	"currency" text DEFAULT 'token' NOT NULL,
	"balance" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ledger_accounts_owner_kind_currency_unique" UNIQUE NULLS NOT DISTINCT("owner_kind","owner_id","kind","currency"),
	CONSTRAINT "ledger_accounts_owner_kind_check" CHECK ("ledger_accounts"."owner_kind" in ('user', 'system')),
	CONSTRAINT "ledger_accounts_owner_id_check" CHECK (("ledger_accounts"."owner_kind" = 'user') = ("ledger_accounts"."owner_id" is not null)),
	CONSTRAINT "ledger_accounts_kind_check" CHECK (("ledger_accounts"."owner_kind" = 'user' and "ledger_accounts"."kind" in ('user_free', 'user_paid')) or ("ledger_accounts"."owner_kind" = 'system' and "ledger_accounts"."kind" in ('revenue_usage', 'faucet', 'payments_clearing', 'refunds'))),
	CONSTRAINT "ledger_accounts_currency_check" CHECK ("ledger_accounts"."currency" in ('token')),
	CONSTRAINT "ledger_accounts_user_balance_non_negative" CHECK ("ledger_accounts"."owner_kind" <> 'user' or "ledger_accounts"."balance" >= 0)
);
--> statement-breakpoint
CREATE TABLE "ledger_entries" (
	"transaction_id" bigint NOT NULL,
	"account_id" bigint NOT NULL,
	"amount" bigint NOT NULL,
	CONSTRAINT "ledger_entries_pkey" PRIMARY KEY("transaction_id","account_id"),
	CONSTRAINT "ledger_entries_amount_not_zero" CHECK ("ledger_entries"."amount" <> 0)
);
--> statement-breakpoint
CREATE TABLE "ledger_transactions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"idempotency_key" text NOT NULL,
	"kind" text NOT NULL,
	"description" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"content_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ledger_transactions_idempotency_key_unique" UNIQUE("idempotency_key"),
	CONSTRAINT "ledger_transactions_idempotency_key_not_empty" CHECK ("ledger_transactions"."idempotency_key" <> ''),
	CONSTRAINT "ledger_transactions_kind_not_empty" CHECK ("ledger_transactions"."kind" <> '')
);
--> statement-breakpoint
ALTER TABLE "ledger_accounts" ADD CONSTRAINT "ledger_accounts_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_transaction_id_ledger_transactions_id_fk" FOREIGN KEY ("transaction_id") REFERENCES "public"."ledger_transactions"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_account_id_ledger_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."ledger_accounts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "ledger_entries_account_transaction_idx" ON "ledger_entries" USING btree ("account_id","transaction_id");