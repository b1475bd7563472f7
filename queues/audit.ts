import { randomUUID } from 'node:crypto';
import type { AuditRecord, AuditRecorder } from '../src/audit/events.js';
import type { Database } from '../src/db/client.js';
import type { Logger } from '../src/logger.js';
import { formatTimestamp, nowMicros } from '../src/memory/time.js';
import { insertAuditDlq, type PendingAuditEvent } from '../src/store/audit.js';
import type { Queues } from './producers.js';

const BATCH_MAX = 200;

/**
 * The recorder producers use: `record` returns at once; events are batched per tick.
 * Each batch is first written to the audit outbox (the audit_dlq table, in Postgres),
 * then enqueued as one `audit` job that appends it promptly. Redis may lose the job (it
 * keeps nothing on disk): the worker's drainer appends whatever the outbox still holds.
 * Nothing waits, nothing is lost unless Postgres and Redis both refuse.
 */
export class QueueAuditRecorder implements AuditRecorder {
  private buffer: PendingAuditEvent[] = [];
  private scheduled = false;
  private inflight = new Set<Promise<void>>();

  constructor(
    private readonly queues: Queues,
    private readonly database: Database,
    private readonly logger: Logger,
  ) {}

  record(event: AuditRecord): void {
    const { eventId, ...rest } = event;
    this.buffer.push({ eventId: eventId ?? randomUUID(), event: { ...rest, at: formatTimestamp(nowMicros()) } });
    if (this.buffer.length >= BATCH_MAX) this.flushNow();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushNow());
    }
  }

  private flushNow(): void {
    this.scheduled = false;
    const events = this.buffer.splice(0, this.buffer.length);
    if (events.length === 0) return;
    const p = (async () => {
      let stored = true;
      try {
        await insertAuditDlq(this.database.db, events.map((e) => ({ ...e, reason: 'outbox' })));
      } catch (err) {
        stored = false;
        this.logger.warn({ err: (err as Error).message }, 'audit outbox write failed; relying on the queue');
      }
      try {
        await this.queues.audit.add('append', { events });
      } catch (err) {
        if (!stored) this.logger.error({ err: (err as Error).message, events }, 'audit events could not be stored nor enqueued');
      }
    })().finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Waits for buffered events to be handed off (shutdown, tests). */
  async flush(): Promise<void> {
    this.flushNow();
    await Promise.all([...this.inflight]);
  }
}
