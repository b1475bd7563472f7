CREATE TABLE "memory_links" (
	"source_id" text NOT NULL,
	"target_id" text NOT NULL,
	"relation" text NOT NULL,
	"created_at" timestamp(6) with time zone NOT NULL,
	"removed_at" timestamp(6) with time zone,
	"signature" jsonb,
	"observed_by" text,
	"valid_from" text,
	"valid_until" text,
	"attest_level" text DEFAULT 'unsigned' NOT NULL,
	CONSTRAINT "memory_links_source_id_target_id_relation_pk" PRIMARY KEY("source_id","target_id","relation")
);
--> statement-breakpoint
ALTER TABLE "memories" ADD COLUMN "archived_at" timestamp(6) with time zone;--> statement-breakpoint
ALTER TABLE "memories" ADD COLUMN "archive_changed_at" timestamp(6) with time zone;--> statement-breakpoint
ALTER TABLE "memories" ADD COLUMN "archive_reason" text;--> statement-breakpoint
CREATE INDEX "memory_links_target_idx" ON "memory_links" USING btree ("target_id");