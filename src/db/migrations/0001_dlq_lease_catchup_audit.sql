CREATE TABLE "audit_checkpoints" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"hash" text NOT NULL,
	"at" text NOT NULL,
	"key_id" text NOT NULL,
	"signature" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_dlq" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"event_id" text NOT NULL,
	"event" jsonb NOT NULL,
	"reason" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"created_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"prev_hash" text NOT NULL,
	"payload_hash" text NOT NULL,
	"hash" text NOT NULL,
	"canonical" text NOT NULL,
	"key_id" text NOT NULL,
	"signature" text NOT NULL,
	"event_id" text NOT NULL,
	"appended_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "peer_watermarks" (
	"peer_id" text PRIMARY KEY NOT NULL,
	"cursor" text,
	"since" text,
	"last_pull_at" timestamp(6) with time zone,
	"last_success_at" timestamp(6) with time zone,
	"last_error" text,
	"lag_rows" integer DEFAULT 0 NOT NULL,
	"last_row_at" timestamp(6) with time zone,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "federation_push_dlq" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "federation_push_dlq" ADD COLUMN "lease_until" timestamp(6) with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_dlq_event_id_uq" ON "audit_dlq" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "audit_dlq_pending_idx" ON "audit_dlq" USING btree ("id") WHERE status = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "audit_log_event_id_uq" ON "audit_log" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "audit_log_kind_idx" ON "audit_log" USING btree ("kind","seq");