CREATE TABLE "change_feed" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"txid" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"memory_id" text NOT NULL,
	"op" text NOT NULL,
	"origin_peer" text,
	"committed_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "memories" (
	"id" text PRIMARY KEY NOT NULL,
	"namespace" text NOT NULL,
	"tier" text NOT NULL,
	"title" text NOT NULL,
	"agent_id" text,
	"tags" text[] NOT NULL,
	"created_at" timestamp(6) with time zone NOT NULL,
	"updated_at" timestamp(6) with time zone NOT NULL,
	"expires_at" timestamp(6) with time zone,
	"deleted_at" timestamp(6) with time zone,
	"version" integer NOT NULL,
	"digest" text NOT NULL,
	"doc" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "peer_cursors" (
	"peer_id" text PRIMARY KEY NOT NULL,
	"txid" "xid8" DEFAULT '0'::xid8 NOT NULL,
	"seq" bigint DEFAULT 0 NOT NULL,
	"last_ack_at" timestamp(6) with time zone,
	"last_error" text,
	"last_error_class" text,
	"retry_at" timestamp(6) with time zone,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "federation_push_dlq" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"peer_id" text NOT NULL,
	"memory_id" text NOT NULL,
	"op" text NOT NULL,
	"payload" jsonb NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"failure_class" text NOT NULL,
	"last_error" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"last_attempt_at" timestamp(6) with time zone,
	"quarantined_at" timestamp(6) with time zone,
	"resolved_at" timestamp(6) with time zone
);
--> statement-breakpoint
CREATE INDEX "change_feed_pos_idx" ON "change_feed" USING btree ("txid","seq");--> statement-breakpoint
CREATE INDEX "memories_namespace_updated_idx" ON "memories" USING btree ("namespace","updated_at");--> statement-breakpoint
CREATE INDEX "memories_updated_idx" ON "memories" USING btree ("updated_at","id");--> statement-breakpoint
CREATE INDEX "memories_created_idx" ON "memories" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "memories_tags_idx" ON "memories" USING gin ("tags");--> statement-breakpoint
CREATE UNIQUE INDEX "federation_push_dlq_pending_uq" ON "federation_push_dlq" USING btree ("peer_id","memory_id") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "federation_push_dlq_take_idx" ON "federation_push_dlq" USING btree ("created_at","id") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "federation_push_dlq_peer_status_idx" ON "federation_push_dlq" USING btree ("peer_id","status");