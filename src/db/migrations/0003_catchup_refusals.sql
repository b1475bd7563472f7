CREATE TABLE "catchup_refusals" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"peer_id" text NOT NULL,
	"memory_id" text NOT NULL,
	"lane" text DEFAULT 'memories' NOT NULL,
	"row" text NOT NULL,
	"code" text NOT NULL,
	"reason" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 1 NOT NULL,
	"first_seen_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp(6) with time zone,
	"resolution" text
);
--> statement-breakpoint
CREATE UNIQUE INDEX "catchup_refusals_pending_uq" ON "catchup_refusals" USING btree ("peer_id","memory_id") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "catchup_refusals_peer_status_idx" ON "catchup_refusals" USING btree ("peer_id","status");