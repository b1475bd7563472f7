-- Half of each DLQ page is left free, so a replay's lease (lease_owner, lease_until: no
-- index covers them) is a HOT update, written beside the row without an entry in any of
-- the table's four indexes. Pages written from now on; existing ones are not rewritten.
ALTER TABLE "federation_push_dlq" SET (fillfactor = 50);
