CREATE TABLE "tombstone_gc" (
	"id" integer PRIMARY KEY NOT NULL,
	"collected_through" timestamp(6) with time zone NOT NULL,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "memories_expiring_idx" ON "memories" USING btree ("expires_at") WHERE deleted_at IS NULL AND expires_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "memories_tombstones_idx" ON "memories" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;