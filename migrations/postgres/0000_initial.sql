CREATE TABLE "announced_entities" (
	"entity_id" uuid PRIMARY KEY NOT NULL,
	"entity_kind" text NOT NULL,
	"repo_id" uuid,
	"announced_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "catalogue_changes" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"entity_kind" text NOT NULL,
	"entity_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "catalogue_changes_entity_kind_check" CHECK ("catalogue_changes"."entity_kind" in ('repo', 'unit'))
);
--> statement-breakpoint
CREATE TABLE "import_cursors" (
	"table_name" text PRIMARY KEY NOT NULL,
	"last_seen_at" timestamp with time zone,
	"last_run_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "repos" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"owner_id" uuid,
	"name" text NOT NULL,
	"summary" text DEFAULT '' NOT NULL,
	"repository_url" text NOT NULL,
	"platform" text NOT NULL,
	"default_branch" text,
	"is_compilable" boolean DEFAULT false NOT NULL,
	"visibility" text DEFAULT 'Public' NOT NULL,
	"versions" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"registry_id" uuid,
	"source" text DEFAULT 'node' NOT NULL,
	"search_document" "tsvector" GENERATED ALWAYS AS (setweight(to_tsvector('simple', coalesce(name, '')), 'A') || setweight(to_tsvector('simple', coalesce(summary, '')), 'B') || setweight(to_tsvector('simple', regexp_replace(coalesce(repository_url, ''), '[/:._-]+', ' ', 'g')), 'C')) STORED NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "repos_name_unique" UNIQUE("name"),
	CONSTRAINT "repos_platform_check" CHECK ("repos"."platform" in ('Gitlab', 'Github')),
	CONSTRAINT "repos_visibility_check" CHECK ("repos"."visibility" in ('Public', 'Internal', 'Private')),
	CONSTRAINT "repos_source_check" CHECK ("repos"."source" in ('node', 'pepeunit')),
	CONSTRAINT "repos_versions_is_array" CHECK (jsonb_typeof("repos"."versions") = 'array')
);
--> statement-breakpoint
CREATE TABLE "unit_nodes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"unit_id" uuid NOT NULL,
	"type" text NOT NULL,
	"topic_name" text NOT NULL,
	"visibility" text DEFAULT 'Public' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "unit_nodes_type_check" CHECK ("unit_nodes"."type" in ('Input', 'Output')),
	CONSTRAINT "unit_nodes_visibility_check" CHECK ("unit_nodes"."visibility" in ('Public', 'Internal', 'Private'))
);
--> statement-breakpoint
CREATE TABLE "units" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repo_id" uuid NOT NULL,
	"owner_id" uuid,
	"name" text NOT NULL,
	"visibility" text DEFAULT 'Public' NOT NULL,
	"source" text DEFAULT 'node' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "units_name_unique" UNIQUE("name"),
	CONSTRAINT "units_visibility_check" CHECK ("units"."visibility" in ('Public', 'Internal', 'Private')),
	CONSTRAINT "units_source_check" CHECK ("units"."source" in ('node', 'pepeunit'))
);
--> statement-breakpoint
CREATE TABLE "actor_keys" (
	"actor_identifier" text NOT NULL,
	"algorithm" text NOT NULL,
	"private_key" jsonb NOT NULL,
	"public_key" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "actor_keys_pk" PRIMARY KEY("actor_identifier","algorithm")
);
--> statement-breakpoint
CREATE TABLE "federated_repos" (
	"iri" text PRIMARY KEY NOT NULL,
	"origin_host" text NOT NULL,
	"pepeunit_id" uuid,
	"name" text NOT NULL,
	"summary" text DEFAULT '' NOT NULL,
	"repository_url" text NOT NULL,
	"platform" text NOT NULL,
	"default_branch" text,
	"is_compilable" boolean DEFAULT false NOT NULL,
	"versions" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"published_at" timestamp with time zone,
	"remote_updated_at" timestamp with time zone,
	"search_document" "tsvector" GENERATED ALWAYS AS (setweight(to_tsvector('simple', coalesce(name, '')), 'A') || setweight(to_tsvector('simple', coalesce(summary, '')), 'B') || setweight(to_tsvector('simple', regexp_replace(coalesce(repository_url, ''), '[/:._-]+', ' ', 'g')), 'C')) STORED NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "federated_repos_versions_is_array" CHECK (jsonb_typeof("federated_repos"."versions") = 'array')
);
--> statement-breakpoint
CREATE TABLE "federated_units" (
	"iri" text PRIMARY KEY NOT NULL,
	"repo_iri" text NOT NULL,
	"origin_host" text NOT NULL,
	"pepeunit_id" uuid,
	"name" text NOT NULL,
	"nodes" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"remote_updated_at" timestamp with time zone,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "federated_units_nodes_is_array" CHECK (jsonb_typeof("federated_units"."nodes") = 'array')
);
--> statement-breakpoint
CREATE TABLE "fedify_kv" (
	"key" text[] PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"expires_at" timestamp with time zone,
	CONSTRAINT "fedify_kv_key_not_empty" CHECK (cardinality("fedify_kv"."key") > 0)
);
--> statement-breakpoint
CREATE TABLE "inbound_follows" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"actor_identifier" text NOT NULL,
	"remote_actor_id" uuid NOT NULL,
	"follow_activity_iri" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "outbound_follows" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"remote_actor_id" uuid NOT NULL,
	"follow_activity_iri" text NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"backfilled_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "outbound_follows_remote_actor_unique" UNIQUE("remote_actor_id"),
	CONSTRAINT "outbound_follows_state_check" CHECK ("outbound_follows"."state" in ('pending', 'accepted', 'rejected'))
);
--> statement-breakpoint
CREATE TABLE "processed_activities" (
	"activity_iri" text PRIMARY KEY NOT NULL,
	"actor_iri" text NOT NULL,
	"type" text NOT NULL,
	"processed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "queue_messages" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"queue" text NOT NULL,
	"payload" json NOT NULL,
	"ordering_key" text,
	"available_at" timestamp with time zone DEFAULT now() NOT NULL,
	"leased_until" timestamp with time zone,
	"lease_token" uuid,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"failed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "queue_messages_attempts_check" CHECK ("queue_messages"."attempts" >= 0),
	CONSTRAINT "queue_messages_lease_check" CHECK (("queue_messages"."leased_until" is null) = ("queue_messages"."lease_token" is null))
);
--> statement-breakpoint
CREATE TABLE "remote_actors" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"iri" text NOT NULL,
	"host" text NOT NULL,
	"type" text NOT NULL,
	"name" text,
	"inbox_url" text NOT NULL,
	"shared_inbox_url" text,
	"outbox_url" text,
	"is_pepeunit_node" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "remote_actors_iri_unique" UNIQUE("iri")
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"login" text NOT NULL,
	"role" text DEFAULT 'User' NOT NULL,
	"status" text DEFAULT 'Unverified' NOT NULL,
	"source" text DEFAULT 'node' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_login_unique" UNIQUE("login"),
	CONSTRAINT "users_role_check" CHECK ("users"."role" in ('User', 'Admin')),
	CONSTRAINT "users_status_check" CHECK ("users"."status" in ('Unverified', 'Verified', 'Blocked')),
	CONSTRAINT "users_source_check" CHECK ("users"."source" in ('node', 'pepeunit'))
);
--> statement-breakpoint
ALTER TABLE "repos" ADD CONSTRAINT "repos_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "unit_nodes" ADD CONSTRAINT "unit_nodes_unit_id_units_id_fk" FOREIGN KEY ("unit_id") REFERENCES "public"."units"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "units" ADD CONSTRAINT "units_repo_id_repos_id_fk" FOREIGN KEY ("repo_id") REFERENCES "public"."repos"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "units" ADD CONSTRAINT "units_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "federated_units" ADD CONSTRAINT "federated_units_repo_iri_federated_repos_iri_fk" FOREIGN KEY ("repo_iri") REFERENCES "public"."federated_repos"("iri") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "inbound_follows" ADD CONSTRAINT "inbound_follows_remote_actor_id_remote_actors_id_fk" FOREIGN KEY ("remote_actor_id") REFERENCES "public"."remote_actors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "outbound_follows" ADD CONSTRAINT "outbound_follows_remote_actor_id_remote_actors_id_fk" FOREIGN KEY ("remote_actor_id") REFERENCES "public"."remote_actors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "repos_search_document_idx" ON "repos" USING gin ("search_document");--> statement-breakpoint
CREATE INDEX "repos_public_recency_idx" ON "repos" USING btree ("updated_at" desc) WHERE "repos"."visibility" = 'Public';--> statement-breakpoint
CREATE INDEX "repos_owner_id_idx" ON "repos" USING btree ("owner_id");--> statement-breakpoint
CREATE INDEX "unit_nodes_unit_id_idx" ON "unit_nodes" USING btree ("unit_id");--> statement-breakpoint
CREATE INDEX "units_repo_id_idx" ON "units" USING btree ("repo_id");--> statement-breakpoint
CREATE INDEX "federated_repos_search_document_idx" ON "federated_repos" USING gin ("search_document");--> statement-breakpoint
CREATE INDEX "federated_repos_origin_host_idx" ON "federated_repos" USING btree ("origin_host");--> statement-breakpoint
CREATE INDEX "federated_repos_recency_idx" ON "federated_repos" USING btree ((coalesce("remote_updated_at", "published_at", "received_at")) desc,"iri" desc);--> statement-breakpoint
CREATE INDEX "federated_repos_origin_recency_idx" ON "federated_repos" USING btree ("origin_host",(coalesce("remote_updated_at", "published_at", "received_at")) desc,"iri" desc);--> statement-breakpoint
CREATE INDEX "federated_units_repo_iri_idx" ON "federated_units" USING btree ("repo_iri");--> statement-breakpoint
CREATE INDEX "fedify_kv_expires_at_idx" ON "fedify_kv" USING btree ("expires_at") WHERE "fedify_kv"."expires_at" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "inbound_follows_actor_follower_unique" ON "inbound_follows" USING btree ("actor_identifier","remote_actor_id");--> statement-breakpoint
CREATE INDEX "processed_activities_processed_at_idx" ON "processed_activities" USING btree ("processed_at");--> statement-breakpoint
CREATE INDEX "queue_messages_pending_idx" ON "queue_messages" USING btree ("queue","id") WHERE "queue_messages"."failed_at" is null;--> statement-breakpoint
CREATE INDEX "queue_messages_ordering_key_idx" ON "queue_messages" USING btree ("queue","ordering_key","id") WHERE "queue_messages"."ordering_key" is not null and "queue_messages"."failed_at" is null;--> statement-breakpoint
CREATE INDEX "queue_messages_available_at_idx" ON "queue_messages" USING btree ("queue","available_at") WHERE "queue_messages"."failed_at" is null;--> statement-breakpoint
CREATE INDEX "remote_actors_host_idx" ON "remote_actors" USING btree ("host");