ALTER TABLE "audit_dlq" RENAME TO "audit_outbox";--> statement-breakpoint
ALTER SEQUENCE "audit_dlq_id_seq" RENAME TO "audit_outbox_id_seq";--> statement-breakpoint
ALTER INDEX "audit_dlq_pkey" RENAME TO "audit_outbox_pkey";--> statement-breakpoint
ALTER INDEX "audit_dlq_event_id_uq" RENAME TO "audit_outbox_event_id_uq";--> statement-breakpoint
ALTER INDEX "audit_dlq_pending_idx" RENAME TO "audit_outbox_pending_idx";
