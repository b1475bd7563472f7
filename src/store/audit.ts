import { asc, eq, gt, gte, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { auditCheckpoints, auditLog, auditOutbox } from '../db/schema.js';
import { inIdList, inTextList } from './lists.js';
import type { AuditEntry, AuditEventInput, Checkpoint } from '../audit/chain.js';
import { redactErrorMessage } from '../redact.js';

// Every appender of this database's chain serializes on it, whatever queue or process.
const AUDIT_LOCK_KEY = 0x6d66617564n; // "mfaud"

type Exec = Db | Tx;

export interface PendingAuditEvent {
  eventId: string;
  event: AuditEventInput;
}

export interface OutboxRow extends PendingAuditEvent {
  id: number;
}

/** Runs `fn` in one transaction holding the chain's advisory lock. */
export function withAuditLock<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_LOCK_KEY.toString()}::bigint)`);
    return fn(tx);
  });
}

export async function auditHead(db: Exec): Promise<{ seq: number; hash: string } | null> {
  const [row] = await db.select({ seq: auditLog.seq, hash: auditLog.hash }).from(auditLog).orderBy(sql`${auditLog.seq} DESC`).limit(1);
  return row ?? null;
}

/** Which of these event ids are already in the chain. */
export async function eventIdsInChain(tx: Exec, eventIds: string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  return new Set((await tx.select({ id: auditLog.eventId }).from(auditLog).where(inTextList(auditLog.eventId, eventIds))).map((r) => r.id));
}

export async function insertEntries(tx: Tx, entries: Array<AuditEntry & { kind: string; eventId: string }>): Promise<void> {
  if (entries.length === 0) return;
  // One JSON parameter for the batch (a VALUES list would bind nine parameters an entry).
  const json = JSON.stringify(entries.map((e) => ({ seq: e.seq, kind: e.kind, prev_hash: e.prevHash, payload_hash: e.payloadHash, hash: e.hash, canonical: e.canonical, key_id: e.keyId, signature: e.signature, event_id: e.eventId })));
  await tx.execute(sql`
    INSERT INTO ${auditLog} (seq, kind, prev_hash, payload_hash, hash, canonical, key_id, signature, event_id)
    SELECT r.seq, r.kind, r.prev_hash, r.payload_hash, r.hash, r.canonical, r.key_id, r.signature, r.event_id
    FROM jsonb_to_recordset(${json}::jsonb) AS r(seq bigint, kind text, prev_hash text, payload_hash text, hash text, canonical text, key_id text, signature text, event_id text)`);
}

export async function insertCheckpoint(tx: Tx, checkpoint: Checkpoint): Promise<void> {
  await tx.insert(auditCheckpoints).values(checkpoint).onConflictDoNothing();
}

export async function lastCheckpointSeq(tx: Exec): Promise<number | null> {
  const [last] = await tx.select({ seq: auditCheckpoints.seq }).from(auditCheckpoints).orderBy(sql`${auditCheckpoints.seq} DESC`).limit(1);
  return last?.seq ?? null;
}

/** The newest signed checkpoint (null before the first). */
export async function lastCheckpoint(db: Exec): Promise<{ seq: number; hash: string; at: string } | null> {
  const [last] = await db.select({ seq: auditCheckpoints.seq, hash: auditCheckpoints.hash, at: auditCheckpoints.at }).from(auditCheckpoints).orderBy(sql`${auditCheckpoints.seq} DESC`).limit(1);
  return last ?? null;
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

/**
 * Writes events to the outbox and returns their row ids (an event id already there keeps
 * its row: recording the same event twice stores it once).
 */
export async function insertOutbox(db: Db, rows: Array<PendingAuditEvent & { reason: string }>): Promise<number[]> {
  if (rows.length === 0) return [];
  const out = await db
    .insert(auditOutbox)
    .values(rows.map((r) => ({ eventId: r.eventId, event: r.event, reason: r.reason.slice(0, 1000) })))
    .onConflictDoUpdate({ target: auditOutbox.eventId, set: { eventId: sql`excluded.event_id` } })
    .returning({ id: auditOutbox.id });
  return out.map((r) => r.id);
}

/** Pending outbox rows among `ids`, oldest first (rows already appended are left out). */
export async function readPendingOutbox(tx: Exec, ids: number[]): Promise<OutboxRow[]> {
  if (ids.length === 0) return [];
  const rows = await tx.select({ id: auditOutbox.id, eventId: auditOutbox.eventId, event: auditOutbox.event }).from(auditOutbox).where(sql`${inIdList(auditOutbox.id, ids)} AND ${eq(auditOutbox.status, 'pending')}`).orderBy(asc(auditOutbox.id));
  return rows.map((r) => ({ id: r.id, eventId: r.eventId, event: r.event as AuditEventInput }));
}

/** The oldest pending outbox rows. */
export async function oldestPendingOutbox(tx: Exec, limit: number): Promise<OutboxRow[]> {
  const rows = await tx.select({ id: auditOutbox.id, eventId: auditOutbox.eventId, event: auditOutbox.event }).from(auditOutbox).where(eq(auditOutbox.status, 'pending')).orderBy(asc(auditOutbox.id)).limit(limit);
  return rows.map((r) => ({ id: r.id, eventId: r.eventId, event: r.event as AuditEventInput }));
}

export async function markOutboxAppended(tx: Exec, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.update(auditOutbox).set({ status: 'appended', updatedAt: sql`now()` }).where(inIdList(auditOutbox.id, ids));
}

export async function markOutboxFailed(db: Db, ids: number[], reason: string): Promise<void> {
  if (ids.length === 0) return;
  // The reason is an error message: a failed query's parameters stay out of the table.
  await db.update(auditOutbox).set({ attempts: sql`${auditOutbox.attempts} + 1`, reason: redactErrorMessage(reason).slice(0, 1000), updatedAt: sql`now()` }).where(inIdList(auditOutbox.id, ids));
}

export async function auditFigures(db: Db): Promise<{ headSeq: number; outboxDepth: number; lastCheckpointAgeSeconds: number }> {
  const [r] = await db.execute<{ head: number | null; outbox: number; cp_age: number | null }>(sql`
    SELECT (SELECT max(seq) FROM ${auditLog})::float8 AS head,
           (SELECT count(*) FROM ${auditOutbox} WHERE status = 'pending' AND created_at < now() - interval '30 seconds')::int AS outbox,
           (SELECT extract(epoch from now() - min(appended_at)) FROM ${auditLog}
              WHERE seq > (SELECT coalesce(max(seq), 0) FROM ${auditCheckpoints}))::float8 AS cp_age`);
  // Age of the oldest entry no checkpoint covers yet: 0 when all are covered (a quiet node is fine).
  return { headSeq: Number(r?.head ?? 0), outboxDepth: Number(r?.outbox ?? 0), lastCheckpointAgeSeconds: r?.cp_age === null || r?.cp_age === undefined ? 0 : Number(r.cp_age) };
}

/** The key id that signed the chain head (to notice a key rotation at start). */
export async function headKeyId(db: Db): Promise<string | null> {
  const [row] = await db.select({ keyId: auditLog.keyId }).from(auditLog).orderBy(sql`${auditLog.seq} DESC`).limit(1);
  return row?.keyId ?? null;
}
