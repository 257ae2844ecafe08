CREATE TABLE "grading_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"trigger" text NOT NULL,
	"status" text NOT NULL,
	"instance_status" text,
	"parameters" jsonb NOT NULL,
	"figures" jsonb,
	"error" text,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "grading_runs_trigger_check" CHECK ("grading_runs"."trigger" in ('schedule', 'manual')),
	CONSTRAINT "grading_runs_status_check" CHECK ("grading_runs"."status" in ('running', 'completed', 'failed')),
	CONSTRAINT "grading_runs_instance_status_check" CHECK ("grading_runs"."instance_status" is null or "grading_runs"."instance_status" in ('green', 'yellow', 'red')),
	CONSTRAINT "grading_runs_completed_has_status" CHECK (("grading_runs"."status" = 'completed') = ("grading_runs"."instance_status" is not null)),
	CONSTRAINT "grading_runs_hour_whole" CHECK (date_trunc('hour', "grading_runs"."hour") = "grading_runs"."hour")
);
--> statement-breakpoint
CREATE TABLE "unit_grades" (
	"hour" timestamp with time zone NOT NULL,
	"unit_id" uuid NOT NULL,
	"run_id" uuid NOT NULL,
	"colour" text NOT NULL,
	"percentile" double precision NOT NULL,
	"mean_mps" double precision NOT NULL,
	"peak_mps" double precision NOT NULL,
	"messages" bigint NOT NULL,
	"bytes" bigint NOT NULL,
	"active_samples" integer NOT NULL,
	"hot" boolean NOT NULL,
	CONSTRAINT "unit_grades_pkey" PRIMARY KEY("hour","unit_id"),
	CONSTRAINT "unit_grades_colour_check" CHECK ("unit_grades"."colour" in ('green', 'yellow', 'red'))
);
--> statement-breakpoint
CREATE TABLE "load_reports" (
	"sequence" bigint PRIMARY KEY NOT NULL,
	"grading_run_id" uuid,
	"jws" text NOT NULL,
	"jws_sha256" text NOT NULL,
	"previous_sha256" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "load_reports_jws_sha256_unique" UNIQUE("jws_sha256"),
	CONSTRAINT "load_reports_sequence_positive" CHECK ("load_reports"."sequence" >= 1),
	CONSTRAINT "load_reports_previous_present" CHECK (("load_reports"."sequence" = 1) = ("load_reports"."previous_sha256" is null))
);
--> statement-breakpoint
CREATE TABLE "report_tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"token_sha256" text NOT NULL,
	"scopes" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "report_tokens_token_sha256_unique" UNIQUE("token_sha256"),
	CONSTRAINT "report_tokens_name_not_empty" CHECK ("report_tokens"."name" <> ''),
	CONSTRAINT "report_tokens_sha256_hex" CHECK ("report_tokens"."token_sha256" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "payment_mismatches" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"provider" text NOT NULL,
	"kind" text NOT NULL,
	"fingerprint" text NOT NULL,
	"order_id" uuid,
	"provider_payment_id" text,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"seen_count" integer DEFAULT 1 NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "payment_mismatches_fingerprint_unique" UNIQUE("fingerprint"),
	CONSTRAINT "payment_mismatches_provider_check" CHECK ("payment_mismatches"."provider" in ('telegram_stars', 'cryptopay')),
	CONSTRAINT "payment_mismatches_kind_check" CHECK ("payment_mismatches"."kind" in ('unknown_order', 'provider_mismatch', 'amount_mismatch', 'duplicate_payment', 'missing_at_provider', 'refund_not_applied', 'ledger_missing'))
);
--> statement-breakpoint
CREATE TABLE "payment_orders" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"provider" text NOT NULL,
	"tokens" bigint NOT NULL,
	"price_amount" bigint NOT NULL,
	"price_currency" text NOT NULL,
	"price_scale" smallint NOT NULL,
	"state" text DEFAULT 'created' NOT NULL,
	"provider_invoice_id" text,
	"provider_payment_id" text,
	"payer_ref" text,
	"credit_transaction_id" bigint,
	"refund_transaction_id" bigint,
	"failure_reason" text,
	"expires_at" timestamp with time zone NOT NULL,
	"paid_at" timestamp with time zone,
	"refunded_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "payment_orders_provider_invoice_unique" UNIQUE("provider","provider_invoice_id"),
	CONSTRAINT "payment_orders_provider_payment_unique" UNIQUE("provider","provider_payment_id"),
	CONSTRAINT "payment_orders_provider_check" CHECK ("payment_orders"."provider" in ('telegram_stars', 'cryptopay')),
	CONSTRAINT "payment_orders_state_check" CHECK ("payment_orders"."state" in ('created', 'paid', 'refunded', 'expired', 'failed')),
	CONSTRAINT "payment_orders_tokens_positive" CHECK ("payment_orders"."tokens" > 0),
	CONSTRAINT "payment_orders_price_positive" CHECK ("payment_orders"."price_amount" > 0),
	CONSTRAINT "payment_orders_price_scale_check" CHECK ("payment_orders"."price_scale" between 0 and 18),
	CONSTRAINT "payment_orders_paid_has_payment" CHECK ("payment_orders"."state" not in ('paid', 'refunded') or ("payment_orders"."provider_payment_id" is not null and "payment_orders"."credit_transaction_id" is not null and "payment_orders"."paid_at" is not null)),
	CONSTRAINT "payment_orders_refunded_has_refund" CHECK ("payment_orders"."state" <> 'refunded' or ("payment_orders"."refund_transaction_id" is not null and "payment_orders"."refunded_at" is not null))
);
--> statement-breakpoint
ALTER TABLE "unit_grades" ADD CONSTRAINT "unit_grades_run_id_grading_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."grading_runs"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "load_reports" ADD CONSTRAINT "load_reports_grading_run_id_grading_runs_id_fk" FOREIGN KEY ("grading_run_id") REFERENCES "public"."grading_runs"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_mismatches" ADD CONSTRAINT "payment_mismatches_order_id_payment_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."payment_orders"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_orders" ADD CONSTRAINT "payment_orders_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_orders" ADD CONSTRAINT "payment_orders_credit_transaction_id_ledger_transactions_id_fk" FOREIGN KEY ("credit_transaction_id") REFERENCES "public"."ledger_transactions"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payment_orders" ADD CONSTRAINT "payment_orders_refund_transaction_id_ledger_transactions_id_fk" FOREIGN KEY ("refund_transaction_id") REFERENCES "public"."ledger_transactions"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "grading_runs_hour_idx" ON "grading_runs" USING btree ("hour","started_at");--> statement-breakpoint
CREATE INDEX "grading_runs_status_finished_idx" ON "grading_runs" USING btree ("status","finished_at");--> statement-breakpoint
CREATE INDEX "unit_grades_unit_hour_idx" ON "unit_grades" USING btree ("unit_id","hour");--> statement-breakpoint
CREATE INDEX "unit_grades_run_idx" ON "unit_grades" USING btree ("run_id");--> statement-breakpoint
CREATE INDEX "load_reports_created_at_idx" ON "load_reports" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "payment_orders_state_expires_idx" ON "payment_orders" USING btree ("state","expires_at");--> statement-breakpoint
CREATE INDEX "payment_orders_user_idx" ON "payment_orders" USING btree ("user_id","created_at");