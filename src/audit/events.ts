import type { Logger } from '../logger.js';

/** Event kinds the chain records (DESIGN.md point 9). */
export type AuditKind =
  | 'federation.refused'
  | 'governance.refused'
  | 'dlq.quarantined'
  | 'dlq.operator'
  | 'memory.deleted'
  | 'memory.committed'
  | 'key.changed';

export interface AuditRecord {
  kind: AuditKind;
  actor?: string;
  subject?: string;
  details: Record<string, unknown>;
}

/**
 * Producers hand events to a recorder and never wait for the chain: `record` returns at
 * once; delivery (queue, or the audit DLQ table when Redis is down) is the recorder's job.
 */
export interface AuditRecorder {
  record(event: AuditRecord): void;
}

/** Recorder for contexts without a queue (CLI tools): the event goes to the log. */
export function logRecorder(logger: Logger): AuditRecorder {
  return { record: (event) => logger.info({ audit: event }, 'audit event') };
}
