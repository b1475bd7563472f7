import { and, asc, eq, gt, gte, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { auditCheckpoints, auditDlq, auditLog } from '../db/schema.js';
import { formatTimestamp, nowMicros } from '../memory/time.js';
import { appendEntries, signCheckpoint, type AuditEntry, type AuditEventInput, type AuditSigner, type Checkpoint } from '../audit/chain.js';

// Every appender of this database's chain serializes on it, whatever queue or process.
const AUDIT_LOCK_KEY = 0x6d66617564n; // "mfaud"

export interface PendingAuditEvent {
  eventId: string;
  event: AuditEventInput;
}

export interface AppendResult {
  appended: number;
  duplicates: number;
  head: { seq: number; hash: string } | null;
  checkpoint: Checkpoint | null;
}

export async function auditHead(db: Db): Promise<{ seq: number; hash: string } | null> {
  const [row] = await db.select({ seq: auditLog.seq, hash: auditLog.hash }).from(auditLog).orderBy(sql`${auditLog.seq} DESC`).limit(1);
  return row ?? null;
}

/**
 * Appends events to the chain in one transaction under an advisory lock: the head read,
 * the new entries and an optional checkpoint commit together, so concurrent or repeated
 * appends (a stalled job run twice) can neither fork nor duplicate the chain. Events
 * whose id is already in the chain are skipped.
 */
export async function appendAuditEvents(
  db: Db,
  nodeId: string,
  signer: AuditSigner,
  events: PendingAuditEvent[],
  opts: { checkpointEvery: number },
): Promise<AppendResult> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY.toString()}::bigint)`);
    const ids = [...new Set(events.map((e) => e.eventId))];
    const existing = ids.length ? new Set((await tx.select({ id: auditLog.eventId }).from(auditLog).where(inArray(auditLog.eventId, ids))).map((r) => r.id)) : new Set<string>();
    const seen = new Set<string>();
    const fresh = events.filter((e) => !existing.has(e.eventId) && !seen.has(e.eventId) && seen.add(e.eventId));
    const [headRow] = await tx.select({ seq: auditLog.seq, hash: auditLog.hash }).from(auditLog).orderBy(sql`${auditLog.seq} DESC`).limit(1);
    let head = headRow ?? null;
    let checkpoint: Checkpoint | null = null;
    if (fresh.length > 0) {
      const entries = appendEntries(head, nodeId, fresh.map((e) => e.event), signer);
      await tx.insert(auditLog).values(entries.map((e, i) => ({ ...e, kind: fresh[i]!.event.kind, eventId: fresh[i]!.eventId })));
      const before = head?.seq ?? 0;
      head = { seq: entries.at(-1)!.seq, hash: entries.at(-1)!.hash };
      // A checkpoint each time the chain crosses a multiple of checkpointEvery.
      if (Math.floor(head.seq / opts.checkpointEvery) > Math.floor(before / opts.checkpointEvery)) {
        checkpoint = signCheckpoint(nodeId, head.seq, head.hash, formatTimestamp(nowMicros()), signer);
        await tx.insert(auditCheckpoints).values(checkpoint).onConflictDoNothing();
      }
    }
    return { appended: fresh.length, duplicates: events.length - fresh.length, head, checkpoint };
  });
}

/** A time-based checkpoint: signs the head if it moved since the last checkpoint. */
export async function checkpointIfAdvanced(db: Db, nodeId: string, signer: AuditSigner): Promise<Checkpoint | null> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY.toString()}::bigint)`);
    const [head] = await tx.select({ seq: auditLog.seq, hash: auditLog.hash }).from(auditLog).orderBy(sql`${auditLog.seq} DESC`).limit(1);
    if (!head) return null;
    const [last] = await tx.select({ seq: auditCheckpoints.seq }).from(auditCheckpoints).orderBy(sql`${auditCheckpoints.seq} DESC`).limit(1);
    if (last && last.seq >= head.seq) return null;
    const cp = signCheckpoint(nodeId, head.seq, head.hash, formatTimestamp(nowMicros()), signer);
    await tx.insert(auditCheckpoints).values(cp).onConflictDoNothing();
    return cp;
  });
}

export async function readAuditPage(db: Db, fromSeq: number, limit: number): Promise<AuditEntry[]> {
  return db
    .select({ seq: auditLog.seq, prevHash: auditLog.prevHash, payloadHash: auditLog.payloadHash, hash: auditLog.hash, canonical: auditLog.canonical, keyId: auditLog.keyId, signature: auditLog.signature })
    .from(auditLog)
    .where(gte(auditLog.seq, fromSeq))
    .orderBy(asc(auditLog.seq))
    .limit(limit);
}

export async function listCheckpoints(db: Db, afterSeq = 0, limit = 1000): Promise<Checkpoint[]> {
  return db.select().from(auditCheckpoints).where(gt(auditCheckpoints.seq, afterSeq)).orderBy(asc(auditCheckpoints.seq)).limit(limit);
}

/** Audit events that could not be enqueued (Redis down) or appended: kept, replayed later. */
export async function insertAuditDlq(db: Db, rows: Array<PendingAuditEvent & { reason: string }>): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insert(auditDlq)
    .values(rows.map((r) => ({ eventId: r.eventId, event: r.event, reason: r.reason.slice(0, 1000) })))
    .onConflictDoNothing({ target: auditDlq.eventId });
}

export async function pendingAuditDlq(db: Db, limit: number): Promise<Array<PendingAuditEvent & { id: number }>> {
  const rows = await db.select({ id: auditDlq.id, eventId: auditDlq.eventId, event: auditDlq.event }).from(auditDlq).where(eq(auditDlq.status, 'pending')).orderBy(asc(auditDlq.id)).limit(limit);
  return rows.map((r) => ({ id: r.id, eventId: r.eventId, event: r.event as AuditEventInput }));
}

export async function markAuditDlqAppended(db: Db, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await db.update(auditDlq).set({ status: 'appended', updatedAt: sql`now()` }).where(inArray(auditDlq.id, ids));
}

export async function markAuditDlqFailed(db: Db, ids: number[], reason: string): Promise<void> {
  if (ids.length === 0) return;
  await db.update(auditDlq).set({ attempts: sql`${auditDlq.attempts} + 1`, reason: reason.slice(0, 1000), updatedAt: sql`now()` }).where(inArray(auditDlq.id, ids));
}

export async function auditFigures(db: Db): Promise<{ headSeq: number; dlqDepth: number; lastCheckpointAgeSeconds: number }> {
  const [r] = await db.execute<{ head: number | null; dlq: number; cp_age: number | null }>(sql`
    SELECT (SELECT max(seq) FROM ${auditLog})::float8 AS head,
           (SELECT count(*) FROM ${auditDlq} WHERE status = 'pending' AND created_at < now() - interval '30 seconds')::int AS dlq,
           (SELECT extract(epoch from now() - min(appended_at)) FROM ${auditLog}
              WHERE seq > (SELECT coalesce(max(seq), 0) FROM ${auditCheckpoints}))::float8 AS cp_age`);
  // Age of the oldest entry no checkpoint covers yet: 0 when all are covered (a quiet node is fine).
  return { headSeq: Number(r?.head ?? 0), dlqDepth: Number(r?.dlq ?? 0), lastCheckpointAgeSeconds: r?.cp_age === null || r?.cp_age === undefined ? 0 : Number(r.cp_age) };
}

/** The key id that signed the chain head (to notice a key rotation at start). */
export async function headKeyId(db: Db): Promise<string | null> {
  const [row] = await db.select({ keyId: auditLog.keyId }).from(auditLog).orderBy(sql`${auditLog.seq} DESC`).limit(1);
  return row?.keyId ?? null;
}

/** Marks outbox rows of events now in the chain (by event id). */
export async function markAuditEventsAppended(db: Db, eventIds: string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await db.update(auditDlq).set({ status: 'appended', updatedAt: sql`now()` }).where(and(inArray(auditDlq.eventId, eventIds), eq(auditDlq.status, 'pending')));
}
