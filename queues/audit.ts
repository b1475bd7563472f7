import { randomUUID } from 'node:crypto';
import type { AuditRecord, AuditRecorder } from '../src/audit/events.js';
import type { Database } from '../src/db/client.js';
import type { Logger } from '../src/logger.js';
import { formatTimestamp, nowMicros } from '../src/memory/time.js';
import { insertAuditDlq, type PendingAuditEvent } from '../src/store/audit.js';
import type { Queues } from './producers.js';

const BATCH_MAX = 200;

/**
 * The recorder producers use: `record` returns at once; events are batched per tick
 * into one `audit` job. If Redis refuses the job, the events go to the audit DLQ table
 * (Postgres), which the audit worker replays into the chain. Nothing waits, nothing is lost.
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
    this.buffer.push({ eventId: randomUUID(), event: { ...event, at: formatTimestamp(nowMicros()) } });
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
    const p = this.queues.audit
      .add('append', { events })
      .then(() => undefined)
      .catch(async (err: Error) => {
        try {
          await insertAuditDlq(this.database.db, events.map((e) => ({ ...e, reason: `enqueue failed: ${err.message}` })));
        } catch (dbErr) {
          this.logger.error({ err: (dbErr as Error).message, events }, 'audit events could not be enqueued nor stored');
        }
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Waits for buffered events to be handed off (shutdown, tests). */
  async flush(): Promise<void> {
    this.flushNow();
    await Promise.all([...this.inflight]);
  }
}
