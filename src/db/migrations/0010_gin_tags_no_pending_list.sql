-- The tags index without a pending list: set in place (no rebuild, no write lock beyond
-- the ALTER's own), then the entries already pending are merged once, here, not by a write.
ALTER INDEX "memories_tags_idx" SET (fastupdate = false);--> statement-breakpoint
SELECT gin_clean_pending_list('memories_tags_idx');
