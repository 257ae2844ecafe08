CREATE TABLE "aggregation_space_minutes" (
	"minute" timestamp with time zone PRIMARY KEY NOT NULL,
	"unit_nodes" jsonb NOT NULL,
	"users" jsonb NOT NULL,
	"missing_tables" text[] NOT NULL,
	CONSTRAINT "aggregation_space_minutes_unit_nodes_check" CHECK (jsonb_typeof("aggregation_space_minutes"."unit_nodes") = 'array'),
	CONSTRAINT "aggregation_space_minutes_users_check" CHECK (jsonb_typeof("aggregation_space_minutes"."users") = 'array'),
	CONSTRAINT "aggregation_space_minutes_missing_tables_check" CHECK ("aggregation_space_minutes"."missing_tables" <@ array['n_last_entry', 'window_entry', 'aggregation_entry']::text[])
);
--> statement-breakpoint
CREATE TABLE "channel_count_minutes" (
	"minute" timestamp with time zone NOT NULL,
	"channel" text NOT NULL,
	"source" text NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "channel_count_minutes_pk" PRIMARY KEY("minute","channel","source"),
	CONSTRAINT "channel_count_minutes_channel_check" CHECK ("channel_count_minutes"."channel" in ('mqtt', 'graphql', 'rest', 'telegram', 'other'))
);
--> statement-breakpoint
CREATE TABLE "counter_batches" (
	"batch_id" text PRIMARY KEY NOT NULL,
	"tap_id" text NOT NULL,
	"newest_minute" timestamp with time zone NOT NULL,
	"rows" bigint NOT NULL,
	"written_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "emqx_counter_batches" (
	"batch_id" text PRIMARY KEY NOT NULL,
	"source" text NOT NULL,
	"newest_minute" timestamp with time zone NOT NULL,
	"rows" bigint NOT NULL,
	"written_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "emqx_topic_counter_minutes" (
	"minute" timestamp with time zone NOT NULL,
	"source" text NOT NULL,
	"topic" text NOT NULL,
	"domain" text NOT NULL,
	"domain_kind" text NOT NULL,
	"unit_node_id" uuid,
	"unit_id" uuid,
	"repo_id" uuid,
	"messages_in" bigint NOT NULL,
	"messages_out" bigint NOT NULL,
	"messages_dropped" bigint NOT NULL,
	CONSTRAINT "emqx_topic_counter_minutes_pk" PRIMARY KEY("minute","source","topic"),
	CONSTRAINT "emqx_topic_counter_minutes_domain_kind_check" CHECK ("emqx_topic_counter_minutes"."domain_kind" in ('local', 'foreign'))
);
--> statement-breakpoint
CREATE TABLE "error_count_minutes" (
	"minute" timestamp with time zone NOT NULL,
	"source" text NOT NULL,
	"fingerprint" text NOT NULL,
	"level" text NOT NULL,
	"category" text NOT NULL,
	"sample" text NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "error_count_minutes_pk" PRIMARY KEY("minute","source","fingerprint"),
	CONSTRAINT "error_count_minutes_source_check" CHECK ("error_count_minutes"."source" in ('node', 'backend')),
	CONSTRAINT "error_count_minutes_level_check" CHECK ("error_count_minutes"."level" in ('error', 'critical'))
);
--> statement-breakpoint
CREATE TABLE "node_state_minutes" (
	"minute" timestamp with time zone PRIMARY KEY NOT NULL,
	"values" jsonb NOT NULL,
	CONSTRAINT "node_state_minutes_values_check" CHECK (jsonb_typeof("node_state_minutes"."values") = 'object')
);
--> statement-breakpoint
CREATE TABLE "timeseries_job_state" (
	"job" text PRIMARY KEY NOT NULL,
	"through" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "topic_counter_hours" (
	"hour" timestamp with time zone NOT NULL,
	"topic" text NOT NULL,
	"domain" text NOT NULL,
	"domain_kind" text NOT NULL,
	"unit_node_id" uuid,
	"unit_id" uuid,
	"repo_id" uuid,
	"messages" bigint NOT NULL,
	"bytes" bigint NOT NULL,
	CONSTRAINT "topic_counter_hours_pk" PRIMARY KEY("hour","topic"),
	CONSTRAINT "topic_counter_hours_domain_kind_check" CHECK ("topic_counter_hours"."domain_kind" in ('local', 'foreign'))
);
--> statement-breakpoint
CREATE TABLE "topic_counter_minutes" (
	"minute" timestamp with time zone NOT NULL,
	"topic" text NOT NULL,
	"domain" text NOT NULL,
	"domain_kind" text NOT NULL,
	"unit_node_id" uuid,
	"unit_id" uuid,
	"repo_id" uuid,
	"messages" bigint NOT NULL,
	"bytes" bigint NOT NULL,
	CONSTRAINT "topic_counter_minutes_pk" PRIMARY KEY("minute","topic"),
	CONSTRAINT "topic_counter_minutes_domain_kind_check" CHECK ("topic_counter_minutes"."domain_kind" in ('local', 'foreign'))
);
--> statement-breakpoint
CREATE TABLE "usage_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"source" text NOT NULL,
	"event_id" text NOT NULL,
	"type" text NOT NULL,
	"subject" text NOT NULL,
	"time" timestamp with time zone NOT NULL,
	"value" numeric(38, 9) NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "usage_events_source_event_id_unique" UNIQUE("source","event_id"),
	CONSTRAINT "usage_events_value_non_negative" CHECK ("usage_events"."value" >= 0)
);
--> statement-breakpoint
CREATE INDEX "counter_batches_newest_minute_idx" ON "counter_batches" USING btree ("newest_minute");--> statement-breakpoint
CREATE INDEX "emqx_counter_batches_newest_minute_idx" ON "emqx_counter_batches" USING btree ("newest_minute");--> statement-breakpoint
CREATE INDEX "usage_events_subject_time_idx" ON "usage_events" USING btree ("subject","time");--> statement-breakpoint
CREATE INDEX "usage_events_type_time_idx" ON "usage_events" USING btree ("type","time");