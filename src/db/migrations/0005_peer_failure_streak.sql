ALTER TABLE "peer_cursors" ADD COLUMN "failure_streak" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "peer_watermarks" ADD COLUMN "failure_streak" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- A peer whose last attempt had already failed before the upgrade starts failing, not active.
UPDATE "peer_cursors" SET "failure_streak" = 1 WHERE "last_error_class" IS NOT NULL;--> statement-breakpoint
UPDATE "peer_watermarks" SET "failure_streak" = 1 WHERE "last_error" IS NOT NULL;
