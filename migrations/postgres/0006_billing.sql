CREATE TABLE "billing_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" text NOT NULL,
	"period" timestamp with time zone NOT NULL,
	"trigger" text NOT NULL,
	"status" text NOT NULL,
	"charged" integer DEFAULT 0 NOT NULL,
	"total" bigint DEFAULT 0 NOT NULL,
	"failures" integer DEFAULT 0 NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "billing_runs_kind_check" CHECK ("billing_runs"."kind" in ('usage', 'aggregation')),
	CONSTRAINT "billing_runs_status_check" CHECK ("billing_runs"."status" in ('running', 'completed', 'skipped', 'failed')),
	CONSTRAINT "billing_runs_trigger_check" CHECK ("billing_runs"."trigger" in ('schedule', 'manual'))
);
--> statement-breakpoint
CREATE TABLE "billing_settings" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"enabled" boolean NOT NULL,
	"monthly_allowance" bigint NOT NULL,
	"region" text NOT NULL,
	"region_prices" jsonb NOT NULL,
	"instance_price" bigint,
	"free_mps" double precision NOT NULL,
	"unit_yellow_percentile" double precision NOT NULL,
	"unit_red_percentile" double precision NOT NULL,
	"free_aggregation_topics" integer NOT NULL,
	"price_per_aggregation_topic" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_by" text NOT NULL,
	CONSTRAINT "billing_settings_single_row" CHECK ("billing_settings"."id" = 1),
	CONSTRAINT "billing_settings_allowance_non_negative" CHECK ("billing_settings"."monthly_allowance" >= 0),
	CONSTRAINT "billing_settings_instance_price_non_negative" CHECK ("billing_settings"."instance_price" is null or "billing_settings"."instance_price" >= 0),
	CONSTRAINT "billing_settings_percentiles" CHECK (0 <= "billing_settings"."unit_yellow_percentile" and "billing_settings"."unit_yellow_percentile" < "billing_settings"."unit_red_percentile" and "billing_settings"."unit_red_percentile" <= 100)
);
--> statement-breakpoint
CREATE TABLE "billing_settings_history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"changed_at" timestamp with time zone DEFAULT now() NOT NULL,
	"changed_by" text NOT NULL,
	"changed_fields" jsonb NOT NULL,
	"previous" jsonb,
	"current" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "unit_billing_state" (
	"unit_id" uuid PRIMARY KEY NOT NULL,
	"state" text NOT NULL,
	"since" timestamp with time zone DEFAULT now() NOT NULL,
	"reason" text,
	"charge_key" text,
	"broker_applied" boolean DEFAULT false NOT NULL,
	"broker_error" text,
	CONSTRAINT "unit_billing_state_check" CHECK ("unit_billing_state"."state" in ('active', 'stopped')),
	CONSTRAINT "unit_billing_state_reason_check" CHECK (("unit_billing_state"."state" = 'stopped') = ("unit_billing_state"."reason" is not null) and ("unit_billing_state"."reason" is null or "unit_billing_state"."reason" in ('balance_exhausted', 'load_at_capacity')))
);
--> statement-breakpoint
CREATE TABLE "user_notices" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"user_id" uuid NOT NULL,
	"key" text NOT NULL,
	"kind" text NOT NULL,
	"text_ru" text NOT NULL,
	"text_en" text NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	CONSTRAINT "user_notices_key_unique" UNIQUE("key")
);
--> statement-breakpoint
ALTER TABLE "ledger_accounts" DROP CONSTRAINT "ledger_accounts_kind_check";--> statement-breakpoint
ALTER TABLE "unit_billing_state" ADD CONSTRAINT "unit_billing_state_unit_id_units_id_fk" FOREIGN KEY ("unit_id") REFERENCES "public"."units"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "user_notices" ADD CONSTRAINT "user_notices_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "billing_runs_kind_period_idx" ON "billing_runs" USING btree ("kind","period","started_at");--> statement-breakpoint
CREATE INDEX "billing_settings_history_changed_at_idx" ON "billing_settings_history" USING btree ("changed_at");--> statement-breakpoint
CREATE INDEX "unit_billing_state_state_idx" ON "unit_billing_state" USING btree ("state");--> statement-breakpoint
CREATE INDEX "user_notices_user_created_idx" ON "user_notices" USING btree ("user_id","created_at");--> statement-breakpoint
ALTER TABLE "ledger_accounts" ADD CONSTRAINT "ledger_accounts_kind_check" CHECK (("ledger_accounts"."owner_kind" = 'user' and "ledger_accounts"."kind" in ('user_free', 'user_paid')) or ("ledger_accounts"."owner_kind" = 'system' and "ledger_accounts"."kind" in ('revenue_usage', 'faucet', 'payments_clearing', 'refunds', 'free_allowance', 'expired_free')));