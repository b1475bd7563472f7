import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { AuditRecord, AuditRecorder } from '../src/audit/events.js';
import { sanitizeAuditRecord } from '../src/audit/sanitize.js';
import type { Database } from '../src/db/client.js';
import type { Logger } from '../src/logger.js';
import { formatTimestamp, nowMicros } from '../src/memory/time.js';
import { insertOutbox, type PendingAuditEvent } from '../src/store/audit.js';
import { RETENTION, defineQueue } from './definition.js';

/** Append these audit outbox rows to the chain (the worker re-reads them). */
export interface AuditJob {
  outboxIds: number[];
}

export const AUDIT_APPEND = 'audit.append';

export const auditQueue = defineQueue<AuditJob>()({
  name: 'audit',
  // A failed append leaves its rows pending in the outbox; the drainer appends them too.
  jobOptions: { ...RETENTION, attempts: 5, backoff: { type: 'peer' } },
  // One chain: one append at a time per process and across every process.
  concurrency: () => 1,
  globalConcurrency: 1,
  afterFinalFailure: 'the rows stay pending in the audit outbox; the drainer appends them',
});

const BATCH_MAX = 200;
// Events kept in memory while Postgres refuses the outbox write, retried with backoff.
const RETRY_BUFFER_MAX = 10_000;

/**
 * The recorder producers use: `record` returns at once; events are batched per tick.
 * Each batch is written to the audit outbox (Postgres) first, then one `audit.append`
 * job carrying the outbox row ids is enqueued. Redis may lose the job: the worker's
 * drainer appends whatever the outbox still holds. While Postgres refuses the write,
 * events wait in memory (up to 10,000, then the oldest are logged as lost).
 */
export class QueueAuditRecorder implements AuditRecorder {
  private buffer: PendingAuditEvent[] = [];
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 200;
  private inflight = new Set<Promise<void>>();

  constructor(
    private readonly queue: Queue<AuditJob>,
    private readonly database: Database,
    private readonly logger: Logger,
  ) {}

  record(event: AuditRecord): void {
    // Sanitized here, at the boundary: a value jsonb refuses would fail the whole batch.
    const { eventId, ...rest } = sanitizeAuditRecord(event);
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
    const p = this.handOff(events).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async handOff(events: PendingAuditEvent[]): Promise<void> {
    let ids: number[];
    try {
      ids = await insertOutbox(this.database.db, events.map((e) => ({ ...e, reason: 'outbox' })));
      this.retryDelayMs = 200;
    } catch (err) {
      this.keepForRetry(events, err as Error);
      return;
    }
    // A lost add costs only latency: the drainer appends pending outbox rows.
    await this.queue.add(AUDIT_APPEND, { outboxIds: ids }).catch((err) => this.logger.debug({ err }, 'audit enqueue failed; the outbox drainer will append'));
  }

  private keepForRetry(events: PendingAuditEvent[], err: Error): void {
    this.buffer.unshift(...events);
    const excess = this.buffer.length - RETRY_BUFFER_MAX;
    if (excess > 0) this.logger.error({ err, lost: this.buffer.splice(0, excess) }, 'audit outbox unavailable too long; oldest audit events dropped');
    this.logger.warn({ err, waiting: this.buffer.length }, 'audit outbox write failed; retrying');
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flushNow();
    }, this.retryDelayMs);
    this.retryTimer.unref();
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 5000);
  }

  /** Hands off buffered events (shutdown, tests); what still cannot be stored is logged. */
  async flush(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.flushNow();
    await Promise.all([...this.inflight]);
  }

  /** Final flush at shutdown: what Postgres still refuses is logged in full, not kept. */
  async close(): Promise<void> {
    await this.flush();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.buffer.length > 0) this.logger.error({ lost: this.buffer.splice(0) }, 'audit events could not be stored before shutdown');
  }

  /** Events still waiting for the outbox (Postgres refused them). */
  get waiting(): number {
    return this.buffer.length;
  }
}
