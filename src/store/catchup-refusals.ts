import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { catchupRefusals } from '../db/schema.js';
import { normalizeDbTime } from './memories.js';

/** A row a catch-up pull refused for good, as it is recorded. */
export interface CatchupRefusal {
  peerId: string;
  memoryId: string;
  lane: 'memories' | 'tombstones';
  /** The row exactly as served (any JSON value). */
  row: unknown;
  code: string;
  reason: string;
}

export interface RefusalRow {
  id: number;
  peerId: string;
  memoryId: string;
  lane: string;
  row: string;
  code: string;
  reason: string;
  status: string;
  attempts: number;
  firstSeenAt: string;
  lastSeenAt: string;
  resolvedAt: string | null;
  resolution: string | null;
}

const columns = {
  id: catchupRefusals.id,
  peerId: catchupRefusals.peerId,
  memoryId: catchupRefusals.memoryId,
  lane: catchupRefusals.lane,
  row: catchupRefusals.row,
  code: catchupRefusals.code,
  reason: catchupRefusals.reason,
  status: catchupRefusals.status,
  attempts: catchupRefusals.attempts,
  firstSeenAt: catchupRefusals.firstSeenAt,
  lastSeenAt: catchupRefusals.lastSeenAt,
  resolvedAt: catchupRefusals.resolvedAt,
  resolution: catchupRefusals.resolution,
};

/**
 * Records refusals inside the pull's applying transaction (the watermark moves past them
 * in the same commit). A memory already pending for the peer is refreshed (row, reason,
 * last_seen_at, attempts+1), never duplicated. Returns the refusals that are new.
 */
export async function recordRefusals(tx: Tx | Db, rows: CatchupRefusal[]): Promise<CatchupRefusal[]> {
  if (rows.length === 0) return [];
  // One statement per page: the last refusal of a memory id in the page wins.
  const byId = new Map(rows.map((r) => [r.memoryId, r]));
  const values = [...byId.values()].map((r) => ({ peerId: r.peerId, memoryId: r.memoryId, lane: r.lane, row: JSON.stringify(r.row) ?? 'null', code: r.code, reason: r.reason.slice(0, 2000) }));
  const res = await tx
    .insert(catchupRefusals)
    .values(values)
    .onConflictDoUpdate({
      target: [catchupRefusals.peerId, catchupRefusals.memoryId],
      targetWhere: sql`status = 'pending'`,
      set: { lane: sql`excluded.lane`, row: sql`excluded.row`, code: sql`excluded.code`, reason: sql`excluded.reason`, lastSeenAt: sql`now()`, attempts: sql`${catchupRefusals.attempts} + 1` },
    })
    .returning({ memoryId: catchupRefusals.memoryId, attempts: catchupRefusals.attempts });
  const fresh = new Set(res.filter((r) => r.attempts === 1).map((r) => r.memoryId));
  return [...byId.values()].filter((r) => fresh.has(r.memoryId));
}

export interface RefusalSelector {
  peerId?: string;
  ids?: number[];
}

function where(sel: RefusalSelector & { status?: string }): SQL | undefined {
  const conds: SQL[] = [];
  if (sel.peerId !== undefined) conds.push(eq(catchupRefusals.peerId, sel.peerId));
  if (sel.ids !== undefined) conds.push(inArray(catchupRefusals.id, sel.ids.length ? sel.ids : [-1]));
  if (sel.status !== undefined) conds.push(eq(catchupRefusals.status, sel.status));
  return conds.length ? and(...conds) : undefined;
}

export async function listRefusals(db: Db, f: RefusalSelector & { status?: string; limit: number; offset: number }): Promise<RefusalRow[]> {
  const rows = await db.select(columns).from(catchupRefusals).where(where(f)).orderBy(asc(catchupRefusals.firstSeenAt), asc(catchupRefusals.id)).limit(f.limit).offset(f.offset);
  const t = (v: string | null) => (v === null ? null : normalizeDbTime(v));
  return (rows as RefusalRow[]).map((r) => ({ ...r, firstSeenAt: t(r.firstSeenAt)!, lastSeenAt: t(r.lastSeenAt)!, resolvedAt: t(r.resolvedAt) }));
}

/** Pending refusals per peer (the pending gauge) and per code. */
export async function refusalStats(db: Db): Promise<{ byPeer: Array<{ peerId: string; pending: number }>; byCode: Array<{ code: string; status: string; count: number }> }> {
  const byPeer = await db
    .select({ peerId: catchupRefusals.peerId, pending: sql<number>`count(*)::int` })
    .from(catchupRefusals)
    .where(eq(catchupRefusals.status, 'pending'))
    .groupBy(catchupRefusals.peerId);
  const byCode = await db
    .select({ code: catchupRefusals.code, status: catchupRefusals.status, count: sql<number>`count(*)::int` })
    .from(catchupRefusals)
    .groupBy(catchupRefusals.code, catchupRefusals.status)
    .orderBy(asc(catchupRefusals.code));
  return { byPeer, byCode };
}

/** Resolves a pending refusal (false: it was no longer pending, e.g. a concurrent re-apply got it). */
export async function resolveRefusal(tx: Tx, id: number, resolution: 'applied' | 'superseded'): Promise<boolean> {
  const r = await tx
    .update(catchupRefusals)
    .set({ status: 'resolved', resolution, resolvedAt: sql`now()` })
    .where(and(eq(catchupRefusals.id, id), eq(catchupRefusals.status, 'pending')))
    .returning({ id: catchupRefusals.id });
  return r.length === 1;
}

/** A re-apply refused again: stays pending, attempts+1, the new reason. */
export async function refuseAgain(tx: Tx | Db, id: number, code: string, reason: string): Promise<void> {
  await tx
    .update(catchupRefusals)
    .set({ code, reason: reason.slice(0, 2000), attempts: sql`${catchupRefusals.attempts} + 1`, lastSeenAt: sql`now()` })
    .where(and(eq(catchupRefusals.id, id), eq(catchupRefusals.status, 'pending')));
}
