-- The tags index without a pending list: set in place (no rebuild), then the entries
-- already pending are merged once, here, not by a write. The ALTER locks the index until
-- the migrations commit: writes to memories wait that long (at start, once).
ALTER INDEX "memories_tags_idx" SET (fastupdate = false);--> statement-breakpoint
SELECT gin_clean_pending_list('memories_tags_idx');
