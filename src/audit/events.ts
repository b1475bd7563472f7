import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import { formatTimestamp, nowMicros } from '../memory/time.js';
import type { AuditEventInput } from './chain.js';
import { sanitizeAuditRecord } from './sanitize.js';

/** Event kinds the chain records (docs/invariants.md, point 9). */
export type AuditKind =
  | 'federation.refused'
  | 'governance.refused'
  | 'dlq.quarantined'
  | 'dlq.operator'
  | 'catchup.refused'
  | 'catchup.operator'
  | 'memory.deleted'
  | 'memory.committed'
  | 'key.changed'
  | 'board.action'
  | 'peer.changed'
  | 'feed.bootstrap'
  | 'repair.completed'
  | 'repair.operator'
  | 'repair.restore_detected';

export interface AuditRecord {
  kind: AuditKind;
  /** Set when several processes may record the same fact: the chain keeps it once. */
  eventId?: string;
  actor?: string;
  subject?: string;
  details: Record<string, unknown>;
}

/**
 * Producers hand events to a recorder and never wait for the chain: `record` returns at
 * once; delivery (the audit outbox in Postgres, then the queue) is the recorder's job.
 */
export interface AuditRecorder {
  record(event: AuditRecord): void;
}

/** Recorder for contexts without a queue (CLI tools): the event goes to the log. */
export function logRecorder(logger: Logger): AuditRecorder {
  return { record: (event) => logger.info({ audit: event }, 'audit event') };
}

/**
 * Recorder for processes without a queue (CLI tools): the event is written to the
 * audit outbox, which the audit worker drains into the chain. Nothing is lost.
 */
export function tableRecorder(insert: (eventId: string, event: AuditEventInput) => Promise<void>, logger: Logger): AuditRecorder & { flush(): Promise<void> } {
  // One insert after another: the outbox (and so the chain) holds the events in the order recorded.
  let last: Promise<void> = Promise.resolve();
  return {
    record(event) {
      const e: AuditEventInput = { ...sanitizeAuditRecord(event), at: formatTimestamp(nowMicros()) };
      last = last.then(() => insert(randomUUID(), e)).catch((err) => logger.error({ err: (err as Error).message, audit: e }, 'audit event could not be stored'));
    },
    async flush() {
      await last;
    },
  };
}
