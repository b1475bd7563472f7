import type { Db, Tx } from '../db/client.js';
import { formatTimestamp, nowMicros } from '../memory/time.js';
import {
  auditHead,
  eventIdsInChain,
  insertCheckpoint,
  insertEntries,
  lastCheckpointSeq,
  markOutboxAppended,
  markOutboxFailed,
  oldestPendingOutbox,
  readPendingOutbox,
  withAuditLock,
  type OutboxRow,
  type PendingAuditEvent,
} from '../store/audit.js';
import { appendEntries, signCheckpoint, type AuditSigner, type Checkpoint } from './chain.js';

/** What appending to this node's chain needs. */
export interface AppendDeps {
  db: Db;
  nodeId: string;
  signer: AuditSigner;
  /** A checkpoint is signed each time the chain crosses a multiple of this. */
  checkpointEvery: number;
}

export interface AppendResult {
  appended: number;
  duplicates: number;
  head: { seq: number; hash: string } | null;
  checkpoint: Checkpoint | null;
}

/** Whether growing the chain from `before` to `after` crosses a checkpoint boundary. */
export const crossesCheckpoint = (before: number, after: number, every: number) => Math.floor(after / every) > Math.floor(before / every);

/**
 * Appends events in one transaction under the chain's advisory lock: the head read, the
 * new entries, a count-based checkpoint and `alsoInTx` (marking outbox rows) commit
 * together, so concurrent or repeated appends (a stalled job run twice) can neither fork
 * nor duplicate the chain. Events whose id is already in the chain are skipped.
 */
export async function appendEvents(deps: AppendDeps, events: PendingAuditEvent[], alsoInTx?: (tx: Tx) => Promise<void>): Promise<AppendResult> {
  return withAuditLock(deps.db, async (tx) => {
    const existing = await eventIdsInChain(tx, [...new Set(events.map((e) => e.eventId))]);
    const seen = new Set<string>();
    const fresh = events.filter((e) => !existing.has(e.eventId) && !seen.has(e.eventId) && seen.add(e.eventId));
    let head = await auditHead(tx);
    let checkpoint: Checkpoint | null = null;
    if (fresh.length > 0) {
      const entries = appendEntries(head, deps.nodeId, fresh.map((e) => e.event), deps.signer);
      await insertEntries(tx, entries.map((e, i) => ({ ...e, kind: fresh[i]!.event.kind, eventId: fresh[i]!.eventId })));
      const before = head?.seq ?? 0;
      head = { seq: entries.at(-1)!.seq, hash: entries.at(-1)!.hash };
      if (crossesCheckpoint(before, head.seq, deps.checkpointEvery)) {
        checkpoint = signCheckpoint(deps.nodeId, head.seq, head.hash, formatTimestamp(nowMicros()), deps.signer);
        await insertCheckpoint(tx, checkpoint);
      }
    }
    await alsoInTx?.(tx);
    return { appended: fresh.length, duplicates: events.length - fresh.length, head, checkpoint };
  });
}

/** Appends outbox rows and marks them appended in the same transaction. */
async function appendOutboxRows(deps: AppendDeps, rows: OutboxRow[]): Promise<AppendResult> {
  return appendEvents(deps, rows, (tx) => markOutboxAppended(tx, rows.map((r) => r.id)));
}

/**
 * An audit job: re-reads its outbox rows (a job payload is never trusted as an event)
 * and appends the ones still pending. A failure leaves them pending for the drainer.
 */
export async function appendFromOutbox(deps: AppendDeps, outboxIds: number[]): Promise<AppendResult> {
  const rows = await readPendingOutbox(deps.db, outboxIds);
  if (rows.length === 0) return { appended: 0, duplicates: 0, head: null, checkpoint: null };
  return appendOutboxRows(deps, rows);
}

/**
 * Appends every pending outbox row, oldest first, `batch` at a time: events whose job was
 * lost (Redis down or restarted empty), failed jobs, CLI events. A failed batch counts an
 * attempt on its rows and stops the drain (the next run retries).
 */
export async function drainOutbox(deps: AppendDeps, batch = 500): Promise<{ appended: number }> {
  let appended = 0;
  for (;;) {
    const rows = await oldestPendingOutbox(deps.db, batch);
    if (rows.length === 0) break;
    try {
      appended += (await appendOutboxRows(deps, rows)).appended;
    } catch (err) {
      await markOutboxFailed(deps.db, rows.map((r) => r.id), (err as Error).message).catch(() => {});
      throw err;
    }
    if (rows.length < batch) break;
  }
  return { appended };
}

/** A time-based checkpoint: signs the head if it moved since the last checkpoint. */
export async function checkpointIfAdvanced(deps: AppendDeps): Promise<Checkpoint | null> {
  return withAuditLock(deps.db, async (tx) => {
    const head = await auditHead(tx);
    if (!head) return null;
    const last = await lastCheckpointSeq(tx);
    if (last !== null && last >= head.seq) return null;
    const cp = signCheckpoint(deps.nodeId, head.seq, head.hash, formatTimestamp(nowMicros()), deps.signer);
    await insertCheckpoint(tx, cp);
    return cp;
  });
}
