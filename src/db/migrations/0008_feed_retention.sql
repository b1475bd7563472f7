CREATE TABLE "feed_horizon" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"pruned_txid" "xid8" DEFAULT '0'::xid8 NOT NULL,
	"pruned_seq" bigint DEFAULT 0 NOT NULL,
	"pruned_rows" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "feed_snapshots" (
	"holder" text PRIMARY KEY NOT NULL,
	"snapshot_id" text NOT NULL,
	"txid" "xid8" NOT NULL,
	"seq" bigint NOT NULL,
	"after_id" text,
	"rows" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"touched_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "peer_watermarks" ADD COLUMN "snapshot_token" text;--> statement-breakpoint
ALTER TABLE "peer_watermarks" ADD COLUMN "snapshot_cursor" text;