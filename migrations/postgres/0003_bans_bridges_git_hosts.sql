CREATE TABLE "ban_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"ban_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"domain" text NOT NULL,
	"topic" text,
	"type" text NOT NULL,
	"actor" text NOT NULL,
	"reason" text,
	"before" jsonb,
	"after" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ban_events_type_check" CHECK ("ban_events"."type" in ('created', 'extended', 'lifted', 'expired')),
	CONSTRAINT "ban_events_snapshot_check" CHECK (("ban_events"."before" is null or jsonb_typeof("ban_events"."before") = 'object') and ("ban_events"."after" is null or jsonb_typeof("ban_events"."after") = 'object'))
);
--> statement-breakpoint
CREATE TABLE "bans" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"kind" text NOT NULL,
	"domain" text NOT NULL,
	"topic" text,
	"level" integer NOT NULL,
	"condition" text NOT NULL,
	"reason" text NOT NULL,
	"evidence" jsonb NOT NULL,
	"created_by" text NOT NULL,
	"starts_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone,
	"rule_id" uuid,
	"expired_at" timestamp with time zone,
	"lifted_at" timestamp with time zone,
	"lifted_by" text,
	"lift_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "bans_kind_check" CHECK ("bans"."kind" in ('domain', 'topic')),
	CONSTRAINT "bans_topic_check" CHECK (("bans"."kind" = 'domain' and "bans"."topic" is null) or ("bans"."kind" = 'topic' and "bans"."topic" like '%_/_%')),
	CONSTRAINT "bans_level_check" CHECK ("bans"."level" between 1 and 4),
	CONSTRAINT "bans_condition_check" CHECK ("bans"."condition" in ('inbound_rate', 'signature_failures', 'invalid_payloads', 'bridged_mps', 'topic_bans', 'admin')),
	CONSTRAINT "bans_reason_check" CHECK (length(btrim("bans"."reason")) > 0),
	CONSTRAINT "bans_evidence_check" CHECK (jsonb_typeof("bans"."evidence") = 'object'),
	CONSTRAINT "bans_lift_check" CHECK (("bans"."lifted_at" is null) = ("bans"."lifted_by" is null) and ("bans"."lifted_at" is null) = ("bans"."lift_reason" is null)),
	CONSTRAINT "bans_domain_check" CHECK ("bans"."domain" = lower("bans"."domain") and length("bans"."domain") between 1 and 253)
);
--> statement-breakpoint
CREATE TABLE "bridge_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"bridge_id" uuid NOT NULL,
	"type" text NOT NULL,
	"actor" text NOT NULL,
	"detail" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "bridge_events_type_check" CHECK ("bridge_events"."type" in ('requested', 'offered', 'accepted', 'rejected', 'cancelled', 'applied', 'apply_failed'))
);
--> statement-breakpoint
CREATE TABLE "bridge_reconciliation" (
	"id" integer PRIMARY KEY NOT NULL,
	"driver" text NOT NULL,
	"applied_state_hash" text,
	"last_attempt_at" timestamp with time zone,
	"last_success_at" timestamp with time zone,
	"last_error" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "bridge_reconciliation_single_row" CHECK ("bridge_reconciliation"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "bridge_routes" (
	"bridge_id" uuid NOT NULL,
	"unit_node_id" uuid NOT NULL,
	"topic" text NOT NULL,
	"qos" integer NOT NULL,
	"max_mps" integer NOT NULL,
	"input_unit_node_id" uuid,
	CONSTRAINT "bridge_routes_pk" PRIMARY KEY("bridge_id","unit_node_id"),
	CONSTRAINT "bridge_routes_qos_check" CHECK ("bridge_routes"."qos" in (0, 1)),
	CONSTRAINT "bridge_routes_max_mps_check" CHECK ("bridge_routes"."max_mps" > 0)
);
--> statement-breakpoint
CREATE TABLE "bridges" (
	"id" uuid PRIMARY KEY NOT NULL,
	"role" text NOT NULL,
	"remote_actor_id" uuid NOT NULL,
	"peer_host" text NOT NULL,
	"origin_domain" text NOT NULL,
	"state" text NOT NULL,
	"offer_iri" text NOT NULL,
	"broker_url" text,
	"broker_username" text,
	"broker_password" text,
	"end_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "bridges_offer_iri_unique" UNIQUE("offer_iri"),
	CONSTRAINT "bridges_role_check" CHECK ("bridges"."role" in ('importer', 'exporter')),
	CONSTRAINT "bridges_state_check" CHECK ("bridges"."state" in ('requested', 'active', 'rejected', 'cancelled')),
	CONSTRAINT "bridges_active_credentials_check" CHECK ("bridges"."state" <> 'active' or ("bridges"."broker_username" is not null and "bridges"."broker_password" is not null and ("bridges"."role" = 'exporter' or "bridges"."broker_url" is not null)))
);
--> statement-breakpoint
CREATE TABLE "git_host_rule_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"rule_id" uuid NOT NULL,
	"host" text NOT NULL,
	"kind" text NOT NULL,
	"type" text NOT NULL,
	"actor" text NOT NULL,
	"before" jsonb,
	"after" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "git_host_rule_events_type_check" CHECK ("git_host_rule_events"."type" in ('created', 'updated', 'removed')),
	CONSTRAINT "git_host_rule_events_snapshot_check" CHECK (("git_host_rule_events"."before" is null or jsonb_typeof("git_host_rule_events"."before") = 'object') and ("git_host_rule_events"."after" is null or jsonb_typeof("git_host_rule_events"."after") = 'object'))
);
--> statement-breakpoint
CREATE TABLE "git_host_rules" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"host" text NOT NULL,
	"kind" text NOT NULL,
	"include_subdomains" boolean DEFAULT true NOT NULL,
	"reason" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "git_host_rules_kind_check" CHECK ("git_host_rules"."kind" in ('allow', 'deny')),
	CONSTRAINT "git_host_rules_reason_check" CHECK ("git_host_rules"."kind" <> 'deny' or length(btrim(coalesce("git_host_rules"."reason", ''))) > 0),
	CONSTRAINT "git_host_rules_created_by_check" CHECK ("git_host_rules"."created_by" in ('admin', 'import')),
	CONSTRAINT "git_host_rules_host_check" CHECK ("git_host_rules"."host" = lower("git_host_rules"."host") and length("git_host_rules"."host") between 1 and 253)
);
--> statement-breakpoint
ALTER TABLE "bridge_routes" ADD CONSTRAINT "bridge_routes_bridge_id_bridges_id_fk" FOREIGN KEY ("bridge_id") REFERENCES "public"."bridges"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "bridges" ADD CONSTRAINT "bridges_remote_actor_id_remote_actors_id_fk" FOREIGN KEY ("remote_actor_id") REFERENCES "public"."remote_actors"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "ban_events_ban_idx" ON "ban_events" USING btree ("ban_id","id");--> statement-breakpoint
CREATE INDEX "ban_events_domain_idx" ON "ban_events" USING btree ("domain","id");--> statement-breakpoint
CREATE INDEX "bans_subject_idx" ON "bans" USING btree ("kind","domain","topic","starts_at");--> statement-breakpoint
CREATE INDEX "bans_list_idx" ON "bans" USING btree ("starts_at","id");--> statement-breakpoint
CREATE INDEX "bans_open_idx" ON "bans" USING btree ("kind","domain") WHERE "bans"."lifted_at" is null and "bans"."expired_at" is null;--> statement-breakpoint
CREATE INDEX "bridge_events_bridge_idx" ON "bridge_events" USING btree ("bridge_id","id");--> statement-breakpoint
CREATE INDEX "bridge_routes_topic_idx" ON "bridge_routes" USING btree ("topic");--> statement-breakpoint
CREATE INDEX "bridges_peer_host_idx" ON "bridges" USING btree ("peer_host");--> statement-breakpoint
CREATE INDEX "bridges_state_idx" ON "bridges" USING btree ("state");--> statement-breakpoint
CREATE INDEX "git_host_rule_events_rule_idx" ON "git_host_rule_events" USING btree ("rule_id","id");--> statement-breakpoint
CREATE INDEX "git_host_rule_events_host_idx" ON "git_host_rule_events" USING btree ("host");--> statement-breakpoint
CREATE UNIQUE INDEX "git_host_rules_host_kind_unique" ON "git_host_rules" USING btree ("host","kind");--> statement-breakpoint
CREATE INDEX "git_host_rules_kind_idx" ON "git_host_rules" USING btree ("kind");