CREATE TABLE "domain_rule_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"rule_id" uuid NOT NULL,
	"domain" text NOT NULL,
	"kind" text NOT NULL,
	"type" text NOT NULL,
	"actor" text NOT NULL,
	"before" jsonb,
	"after" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "domain_rule_events_type_check" CHECK ("domain_rule_events"."type" in ('created', 'updated', 'lifted', 'expired', 'imported')),
	CONSTRAINT "domain_rule_events_snapshot_check" CHECK (("domain_rule_events"."before" is null or jsonb_typeof("domain_rule_events"."before") = 'object') and ("domain_rule_events"."after" is null or jsonb_typeof("domain_rule_events"."after") = 'object'))
);
--> statement-breakpoint
CREATE TABLE "domain_rules" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"domain" text NOT NULL,
	"kind" text NOT NULL,
	"severity" text,
	"include_subdomains" boolean DEFAULT true NOT NULL,
	"reason" text,
	"public_comment" text,
	"expires_at" timestamp with time zone,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "domain_rules_kind_check" CHECK ("domain_rules"."kind" in ('allow', 'deny')),
	CONSTRAINT "domain_rules_severity_check" CHECK (("domain_rules"."kind" = 'deny' and "domain_rules"."severity" in ('suspend', 'reject_content')) or ("domain_rules"."kind" = 'allow' and "domain_rules"."severity" is null)),
	CONSTRAINT "domain_rules_reason_check" CHECK ("domain_rules"."kind" <> 'deny' or length(btrim(coalesce("domain_rules"."reason", ''))) > 0),
	CONSTRAINT "domain_rules_created_by_check" CHECK ("domain_rules"."created_by" in ('admin', 'import', 'auto')),
	CONSTRAINT "domain_rules_domain_check" CHECK ("domain_rules"."domain" = lower("domain_rules"."domain") and length("domain_rules"."domain") between 1 and 253)
);
--> statement-breakpoint
CREATE TABLE "domain_rules_version" (
	"id" integer PRIMARY KEY NOT NULL,
	"version" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "domain_rules_version_single_row" CHECK ("domain_rules_version"."id" = 1)
);
--> statement-breakpoint
CREATE INDEX "domain_rule_events_rule_idx" ON "domain_rule_events" USING btree ("rule_id","id");--> statement-breakpoint
CREATE INDEX "domain_rule_events_domain_idx" ON "domain_rule_events" USING btree ("domain");--> statement-breakpoint
CREATE UNIQUE INDEX "domain_rules_domain_kind_unique" ON "domain_rules" USING btree ("domain","kind");