import { and, asc, desc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { inIdList } from './lists.js';
import { pushDlq } from '../db/schema.js';
import { normalizeDbTime } from './memories.js';

export type DlqStatus = 'pending' | 'quarantined' | 'replayed' | 'purged' | 'superseded';

export interface DeadLetter {
  peerId: string;
  memoryId: string;
  op: 'upsert' | 'delete';
  payload: unknown;
  failureClass: string;
  error: string;
}

export interface DlqRow {
  id: number;
  peerId: string;
  memoryId: string;
  op: string;
  payload: unknown;
  status: string;
  failureClass: string;
  lastError: string;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  lastAttemptAt: string | null;
  quarantinedAt: string | null;
}

const rowColumns = {
  id: pushDlq.id,
  peerId: pushDlq.peerId,
  memoryId: pushDlq.memoryId,
  op: pushDlq.op,
  payload: pushDlq.payload,
  status: pushDlq.status,
  failureClass: pushDlq.failureClass,
  lastError: pushDlq.lastError,
  attempts: pushDlq.attempts,
  createdAt: pushDlq.createdAt,
  updatedAt: pushDlq.updatedAt,
  lastAttemptAt: pushDlq.lastAttemptAt,
  quarantinedAt: pushDlq.quarantinedAt,
};

/**
 * Records rows a peer refused. One pending row per (peer, memory): a later refusal of
 * the same memory refreshes the payload and error instead of adding a row.
 */
export async function deadLetter(db: Db, rows: DeadLetter[]): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insert(pushDlq)
    .values(rows.map((r) => ({ peerId: r.peerId, memoryId: r.memoryId, op: r.op, payload: r.payload, failureClass: r.failureClass, lastError: r.error.slice(0, 2000) })))
    .onConflictDoUpdate({
      target: [pushDlq.peerId, pushDlq.memoryId],
      targetWhere: sql`status = 'pending'`,
      // A newer refusal replaces the payload under a replayer's lease: drop the lease so the
      // stale replayer's settle (replayed/failed) matches nothing and the row stays pending.
      set: { payload: sql`excluded.payload`, op: sql`excluded.op`, failureClass: sql`excluded.failure_class`, lastError: sql`excluded.last_error`, updatedAt: sql`now()`, leaseOwner: null, leaseUntil: null },
    });
}

const takeable = (peerIds: string[]) =>
  and(eq(pushDlq.status, 'pending'), inArray(pushDlq.peerId, peerIds), sql`(${pushDlq.leaseUntil} IS NULL OR ${pushDlq.leaseUntil} < now())`);

/** Pending rows a replayer could take now (quarantined and leased rows excluded). */
export async function countReplayable(db: Db, peerIds: string[]): Promise<number> {
  if (peerIds.length === 0) return 0;
  const [r] = await db.select({ n: sql<number>`count(*)::int` }).from(pushDlq).where(takeable(peerIds));
  return r?.n ?? 0;
}

/**
 * Takes up to `limit` pending rows, oldest first, under a lease owned by `owner`.
 * SKIP LOCKED plus the lease means two replayers never take one row; the transaction
 * is one statement, so no lock is held while rows are sent.
 */
export async function leaseReplayable(db: Db, peerIds: string[], limit: number, owner: string, leaseMs: number): Promise<DlqRow[]> {
  if (peerIds.length === 0 || limit <= 0) return [];
  const rows = await db.execute<Record<string, unknown>>(sql`
    UPDATE ${pushDlq} SET lease_owner = ${owner}, lease_until = now() + ${`${leaseMs} milliseconds`}::interval
    WHERE id IN (
      SELECT id FROM ${pushDlq}
      WHERE ${takeable(peerIds)}
      ORDER BY created_at, id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    RETURNING id, peer_id, memory_id, op, payload, attempts, created_at::text AS created_at`);
  return rows
    .map((r) => ({
      id: Number(r.id),
      peerId: String(r.peer_id),
      memoryId: String(r.memory_id),
      op: String(r.op),
      payload: r.payload,
      status: 'pending',
      failureClass: '',
      lastError: '',
      attempts: Number(r.attempts),
      createdAt: String(r.created_at),
      updatedAt: '',
      lastAttemptAt: null,
      quarantinedAt: null,
    }))
    .sort((a, b) => a.id - b.id);
}

export async function markReplayed(db: Db, ids: number[], owner: string): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db
    .update(pushDlq)
    .set({ status: 'replayed', resolvedAt: sql`now()`, lastAttemptAt: sql`now()`, updatedAt: sql`now()`, leaseOwner: null, leaseUntil: null })
    .where(and(inIdList(pushDlq.id, ids), eq(pushDlq.leaseOwner, owner)))
    .returning({ id: pushDlq.id });
  return r.length;
}

/**
 * A failed replay: attempt+1 and the error; at `maxAttempts` the row is quarantined
 * (excluded from every take). Returns the rows quarantined by this call.
 */
export async function markFailed(db: Db, failures: Array<{ id: number; failureClass: string; error: string }>, owner: string, maxAttempts: number): Promise<DlqRow[]> {
  if (failures.length === 0) return [];
  const quarantined: DlqRow[] = [];
  // Group identical errors so a whole failed batch is one statement.
  const groups = new Map<string, { failureClass: string; error: string; ids: number[] }>();
  for (const f of failures) {
    const key = `${f.failureClass}\u0000${f.error}`;
    const g = groups.get(key) ?? { failureClass: f.failureClass, error: f.error.slice(0, 2000), ids: [] };
    g.ids.push(f.id);
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    const rows = await db
      .update(pushDlq)
      .set({
        attempts: sql`${pushDlq.attempts} + 1`,
        lastError: g.error,
        failureClass: g.failureClass,
        status: sql`CASE WHEN ${pushDlq.attempts} + 1 >= ${maxAttempts} THEN 'quarantined' ELSE 'pending' END`,
        quarantinedAt: sql`CASE WHEN ${pushDlq.attempts} + 1 >= ${maxAttempts} THEN now() ELSE NULL END`,
        lastAttemptAt: sql`now()`,
        updatedAt: sql`now()`,
        leaseOwner: null,
        leaseUntil: null,
      })
      .where(and(inIdList(pushDlq.id, g.ids), eq(pushDlq.leaseOwner, owner)))
      .returning(rowColumns);
    quarantined.push(...(rows as DlqRow[]).filter((r) => r.status === 'quarantined'));
  }
  return quarantined;
}

/** Gives rows back untouched (not tried this round, or throttled: no attempt burnt). */
export async function releaseLease(db: Db, ids: number[], owner: string): Promise<void> {
  if (ids.length === 0) return;
  await db.update(pushDlq).set({ leaseOwner: null, leaseUntil: null }).where(and(inIdList(pushDlq.id, ids), eq(pushDlq.leaseOwner, owner)));
}

export interface DlqSelector {
  peerId?: string;
  ids?: number[];
  all?: boolean;
}

function selectorWhere(sel: DlqSelector): SQL | undefined {
  const conds: SQL[] = [];
  if (sel.peerId !== undefined) conds.push(eq(pushDlq.peerId, sel.peerId));
  if (sel.ids !== undefined) conds.push(inArray(pushDlq.id, sel.ids.length ? sel.ids : [-1]));
  if (conds.length === 0 && !sel.all) throw new Error('a DLQ selector needs a peer, ids, or all');
  return conds.length ? and(...conds) : undefined;
}

export async function listDlq(db: Db, f: { peerId?: string; status?: string; limit: number; offset: number }): Promise<DlqRow[]> {
  const conds: SQL[] = [];
  if (f.peerId) conds.push(eq(pushDlq.peerId, f.peerId));
  if (f.status) conds.push(eq(pushDlq.status, f.status));
  const rows = await db.select(rowColumns).from(pushDlq).where(conds.length ? and(...conds) : undefined).orderBy(asc(pushDlq.createdAt), asc(pushDlq.id)).limit(f.limit).offset(f.offset);
  // Timestamps in the wire form, like everything memfed serves.
  const t = (v: string | null) => (v === null ? null : normalizeDbTime(v));
  return (rows as DlqRow[]).map((r) => ({ ...r, createdAt: t(r.createdAt)!, updatedAt: t(r.updatedAt)!, lastAttemptAt: t(r.lastAttemptAt), quarantinedAt: t(r.quarantinedAt) }));
}

export interface DlqStats {
  byPeer: Array<{ peerId: string; pending: number; quarantined: number; oldestPendingAgeSeconds: number | null }>;
  byClass: Array<{ failureClass: string; status: string; count: number }>;
  totals: { pending: number; quarantined: number; replayed: number; purged: number };
}

export async function dlqStats(db: Db): Promise<DlqStats> {
  const peers = await db.execute<{ peer_id: string; pending: number; quarantined: number; oldest: number | null }>(sql`
    SELECT peer_id,
           count(*) FILTER (WHERE status = 'pending')::int AS pending,
           count(*) FILTER (WHERE status = 'quarantined')::int AS quarantined,
           EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8 AS oldest
    FROM ${pushDlq} WHERE status IN ('pending', 'quarantined') GROUP BY peer_id ORDER BY peer_id`);
  const classes = await db
    .select({ failureClass: pushDlq.failureClass, status: pushDlq.status, count: sql<number>`count(*)::int` })
    .from(pushDlq)
    .groupBy(pushDlq.failureClass, pushDlq.status)
    .orderBy(desc(sql`count(*)`));
  const totals = { pending: 0, quarantined: 0, replayed: 0, purged: 0 };
  for (const c of classes) if (c.status in totals) totals[c.status as keyof typeof totals] += c.count;
  return {
    byPeer: peers.map((p) => ({ peerId: p.peer_id, pending: p.pending, quarantined: p.quarantined, oldestPendingAgeSeconds: p.oldest === null ? null : Number(p.oldest) })),
    byClass: classes,
    totals,
  };
}

/**
 * Releases quarantined rows back to pending with a fresh attempt budget. A quarantined
 * row whose memory already has a newer pending row is marked superseded instead (the
 * pending one carries the same delivery).
 */
export async function requeueQuarantined(db: Db, sel: DlqSelector): Promise<{ requeued: number; superseded: number }> {
  const where = and(eq(pushDlq.status, 'quarantined'), selectorWhere(sel));
  return db.transaction(async (tx) => {
    const superseded = await tx
      .update(pushDlq)
      .set({ status: 'superseded', resolvedAt: sql`now()`, updatedAt: sql`now()` })
      .where(and(where, sql`EXISTS (SELECT 1 FROM ${pushDlq} p2 WHERE p2.peer_id = ${pushDlq.peerId} AND p2.memory_id = ${pushDlq.memoryId} AND p2.status = 'pending')`))
      .returning({ id: pushDlq.id });
    const requeued = await tx
      .update(pushDlq)
      .set({ status: 'pending', attempts: 0, quarantinedAt: null, leaseOwner: null, leaseUntil: null, updatedAt: sql`now()` })
      .where(where)
      .returning({ id: pushDlq.id });
    return { requeued: requeued.length, superseded: superseded.length };
  });
}

/** Purge = an operator gives up on rows: kept as `purged` for the record, never sent again. */
export async function purgeDlq(db: Db, sel: DlqSelector, dryRun: boolean): Promise<{ matched: number; purged: number }> {
  const where = and(inArray(pushDlq.status, ['pending', 'quarantined']), selectorWhere(sel));
  const [m] = await db.select({ n: sql<number>`count(*)::int` }).from(pushDlq).where(where);
  const matched = m?.n ?? 0;
  if (dryRun) return { matched, purged: 0 };
  const r = await db.update(pushDlq).set({ status: 'purged', resolvedAt: sql`now()`, updatedAt: sql`now()`, leaseOwner: null, leaseUntil: null }).where(where).returning({ id: pushDlq.id });
  return { matched, purged: r.length };
}

export async function hasReplayable(db: Db, peerId: string): Promise<boolean> {
  const r = await db.select({ id: pushDlq.id }).from(pushDlq).where(and(eq(pushDlq.peerId, peerId), eq(pushDlq.status, 'pending'))).limit(1);
  return r.length > 0;
}

/** Peers that dead-lettered the memory changed at a feed position (quorum: not an ack). */
export async function peersRefusing(db: Db, position: { txid: string; seq: string }): Promise<Set<string>> {
  const rows = await db.execute<{ peer_id: string }>(sql`
    SELECT DISTINCT d.peer_id FROM ${pushDlq} d JOIN change_feed f ON f.memory_id = d.memory_id
    WHERE f.txid = ${position.txid}::xid8 AND f.seq = ${position.seq}::bigint AND d.status IN ('pending', 'quarantined')`);
  return new Set(rows.map((r) => r.peer_id));
}

/**
 * Feed positions in (after, upTo] whose memory the peer dead-lettered (pending or
 * quarantined): where its cursor passed without an ack. The range scan bounds the work.
 */
export async function refusedBetween(db: Db, peerId: string, after: { txid: string; seq: string }, upTo: { txid: string; seq: string }): Promise<{ txid: string; seq: string }[]> {
  const rows = await db.execute<{ txid: string; seq: string }>(sql`
    SELECT f.txid::text AS txid, f.seq::text AS seq FROM change_feed f
    WHERE (f.txid, f.seq) > (${after.txid}::xid8, ${after.seq}::bigint) AND (f.txid, f.seq) <= (${upTo.txid}::xid8, ${upTo.seq}::bigint)
      AND EXISTS (SELECT 1 FROM ${pushDlq} d WHERE d.peer_id = ${peerId} AND d.memory_id = f.memory_id AND d.status IN ('pending', 'quarantined'))`);
  return rows.map((r) => ({ txid: r.txid, seq: r.seq }));
}

/** Extends a lease before each chunk is sent; returns the ids still owned. */
export async function renewLease(db: Db, ids: number[], owner: string, leaseMs: number): Promise<Set<number>> {
  if (ids.length === 0) return new Set();
  const rows = await db
    .update(pushDlq)
    .set({ leaseUntil: sql`now() + ${`${leaseMs} milliseconds`}::interval` })
    .where(and(inIdList(pushDlq.id, ids), eq(pushDlq.leaseOwner, owner), eq(pushDlq.status, 'pending')))
    .returning({ id: pushDlq.id });
  return new Set(rows.map((r) => r.id));
}
