import { and, asc, desc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { inTextList } from './lists.js';
import { memories, memoryLinks } from '../db/schema.js';
import { orderKeys, type Memory } from '../memory/model.js';
import type { LinkRelation, LinkRemoval, MemoryLink } from '../memory/link.js';
import { formatTimestamp, parseTimestamp } from '../memory/time.js';
import { appendChanges, type FeedPosition } from './feed.js';
import { ARCHIVED, NOT_ARCHIVED, NOT_EXPIRED, isArchived, normalizeDbTime, type ArchiveState, type StoredLink } from './memories.js';

export { isArchived, type ArchiveState, type StoredLink };

type Exec = Db | Tx;

/*
 * Archive LWW rule (docs/wire.md, "Archive and links"). Each memory carries an archive
 * register (archived_at, archive_changed_at): an archive event at time t sets it to
 * (t, t), a restore at t to (null, t); an event applies only when its (time, archived)
 * is greater than the stored (archive_changed_at, archived) — so an older archive never
 * undoes a newer restore and vice versa. Content updates are ordered against the
 * register by time: the memory is archived while archived_at >= updated_at, so a content
 * update newer than the archive brings the memory back, and an update older than the
 * archive does not. A tombstone beats both (archive events on tombstones are no-ops).
 */
/** An archive or restore as replicated: the memory id, which, and when. */
export interface ArchiveEvent {
  id: string;
  archived: boolean;
  at: string;
  /**
   * Set for upstream's bare `archives` / `restores` ids (time = receipt): applied only when
   * they change the memory's state, as upstream no-ops an archive of an archived row and a
   * restore of a live one; so a replayed bare id never moves the register.
   */
  untimed?: true;
  /** Why (archives only); upstream's receiver records "sync_push" for a replicated archive. */
  reason?: string;
}

export const micros = (t: string) => parseTimestamp(t) ?? 0;

/** The replicated form of a register: what a peer needs to reach the same state. */
export const archiveEventOf = (id: string, s: ArchiveState): ArchiveEvent => ({ id, archived: s.archivedAt !== null, at: s.changedAt, ...(s.archivedAt !== null && s.reason ? { reason: s.reason } : {}) });

function dedupeEvents(events: ArchiveEvent[]): ArchiveEvent[] {
  const best = new Map<string, ArchiveEvent>();
  for (const e of events) {
    const cur = best.get(e.id);
    if (!cur || micros(e.at) > micros(cur.at) || (e.at === cur.at && e.archived && !cur.archived)) best.set(e.id, e);
  }
  return [...best.values()];
}

/**
 * Applies replicated archive/restore events (LWW on the register) in the caller's
 * transaction; returns the ids whose register changed. Unknown and tombstoned ids are
 * no-ops, as upstream's `archive_memory` / `restore_archived` on missing rows.
 */
export async function applyArchiveEvents(tx: Tx, events: ArchiveEvent[]): Promise<{ archived: string[]; restored: string[] }> {
  const archived: string[] = [];
  const restored: string[] = [];
  for (const e of dedupeEvents(events)) {
    const res = await tx
      .update(memories)
      .set({ archivedAt: e.archived ? e.at : null, archiveChangedAt: e.at, archiveReason: e.archived ? (e.reason ?? 'sync_push') : null })
      .where(
        and(
          eq(memories.id, e.id),
          isNull(memories.deletedAt),
          ...(e.untimed ? [e.archived ? NOT_ARCHIVED : ARCHIVED] : []),
          sql`(${memories.archiveChangedAt} IS NULL OR (${e.at}::timestamptz, ${e.archived}::boolean) > (${memories.archiveChangedAt}, ${memories.archivedAt} IS NOT NULL))`,
        ),
      )
      .returning({ id: memories.id });
    if (res.length > 0) (e.archived ? archived : restored).push(e.id);
  }
  return { archived, restored };
}

async function lockLive(tx: Tx, id: string) {
  const [row] = await tx
    .select({ doc: memories.doc, updatedAt: memories.updatedAt, deletedAt: memories.deletedAt, archivedAt: memories.archivedAt, changedAt: memories.archiveChangedAt })
    .from(memories)
    .where(eq(memories.id, id))
    .for('update');
  if (!row || row.deletedAt !== null) return null;
  const state = row.changedAt === null ? null : { archivedAt: row.archivedAt === null ? null : normalizeDbTime(row.archivedAt), changedAt: normalizeDbTime(row.changedAt) };
  const memory = orderKeys(row.doc as Memory);
  return { memory, state, archived: isArchived(state, memory.updated_at) };
}

/** The time of a new local event: now, but after everything it must win against. */
const eventTime = (nowMicros: number, ...after: Array<string | null | undefined>) =>
  formatTimestamp(Math.max(nowMicros, ...after.filter((t): t is string => !!t).map((t) => micros(t) + 1)));

/**
 * Local archive (upstream POST /api/v1/archive): each live, not yet archived id is
 * archived now (never before its updated_at or last archive event); others are `missing`.
 */
export async function archiveMemories(db: Db, ids: string[], nowMicros: number, reason = 'archive'): Promise<{ archived: string[]; missing: string[]; position: FeedPosition | null }> {
  return db.transaction(async (tx) => {
    const archived: string[] = [];
    const missing: string[] = [];
    for (const id of [...new Set(ids)]) {
      const cur = await lockLive(tx, id);
      if (!cur || cur.archived) {
        missing.push(id);
        continue;
      }
      const at = eventTime(nowMicros, cur.memory.updated_at, cur.state?.changedAt);
      await tx.update(memories).set({ archivedAt: at, archiveChangedAt: at, archiveReason: reason }).where(eq(memories.id, id));
      archived.push(id);
    }
    const position = await appendChanges(tx, archived.map((id) => ({ memoryId: id, op: 'archive' as const })));
    return { archived, missing, position };
  });
}

/** Local restore (upstream POST /api/v1/archive/{id}/restore): false when not archived. */
export async function restoreMemory(db: Db, id: string, nowMicros: number): Promise<{ restored: boolean; position: FeedPosition | null }> {
  return db.transaction(async (tx) => {
    const cur = await lockLive(tx, id);
    if (!cur || !cur.archived) return { restored: false, position: null };
    const at = eventTime(nowMicros, cur.state?.changedAt);
    await tx.update(memories).set({ archivedAt: null, archiveChangedAt: at, archiveReason: null }).where(eq(memories.id, id));
    const position = await appendChanges(tx, [{ memoryId: id, op: 'restore' }]);
    return { restored: true, position };
  });
}

/** Archived, not expired memories, most recently archived first (upstream GET /api/v1/archive). */
export async function listArchived(db: Exec, f: { namespace?: string; limit: number; offset: number }) {
  const conds = [isNull(memories.deletedAt), ARCHIVED, NOT_EXPIRED];
  if (f.namespace !== undefined) conds.push(eq(memories.namespace, f.namespace));
  const rows = await db
    .select({ doc: memories.doc, archivedAt: memories.archivedAt, reason: memories.archiveReason })
    .from(memories)
    .where(and(...conds))
    .orderBy(desc(memories.archivedAt), asc(memories.id))
    .limit(f.limit)
    .offset(f.offset);
  return rows.map((r) => ({ ...orderKeys(r.doc as Memory), archived_at: normalizeDbTime(r.archivedAt!), archive_reason: r.reason }));
}

// ---- links -----------------------------------------------------------------

type LinkRow = typeof memoryLinks.$inferSelect;

export function linkFromRow(r: LinkRow): StoredLink {
  const out: StoredLink = { source_id: r.sourceId, target_id: r.targetId, relation: r.relation as LinkRelation, created_at: normalizeDbTime(r.createdAt), removed_at: r.removedAt === null ? null : normalizeDbTime(r.removedAt), attest_level: r.attestLevel };
  if (r.signature !== null) out.signature = r.signature;
  if (r.observedBy !== null) out.observed_by = r.observedBy;
  if (r.validFrom !== null) out.valid_from = r.validFrom;
  if (r.validUntil !== null) out.valid_until = r.validUntil;
  return out;
}

export const isLinkLive = (l: { created_at: string; removed_at: string | null }) => l.removed_at === null || micros(l.created_at) > micros(l.removed_at);

/** The link as upstream serializes it (no removal time, no attest level). */
export function wireLink(l: StoredLink): MemoryLink {
  const { removed_at: _r, attest_level: _a, ...link } = l;
  return link;
}

/**
 * Both ends are stored, not deleted memories: a link whose memory has not arrived yet, or
 * was deleted, is not served (the row stays, for LWW and for when the memory arrives).
 */
const BOTH_ENDS_STORED = sql`(SELECT count(*) FROM ${memories} m WHERE m.id IN (${memoryLinks.sourceId}, ${memoryLinks.targetId}) AND m.deleted_at IS NULL) = 2`;

const LIVE_LINK = sql`(${memoryLinks.removedAt} IS NULL OR ${memoryLinks.createdAt} > ${memoryLinks.removedAt})`;

/** Every stored link (live or removed) whose source is one of `ids`, grouped by source. */
export async function linksBySource(db: Exec, ids: string[]): Promise<Map<string, StoredLink[]>> {
  const out = new Map<string, StoredLink[]>();
  if (ids.length === 0) return out;
  const rows = await db.select().from(memoryLinks).where(inTextList(memoryLinks.sourceId, ids)).orderBy(asc(memoryLinks.targetId), asc(memoryLinks.relation));
  for (const r of rows) {
    const l = linkFromRow(r);
    const list = out.get(l.source_id);
    if (list) list.push(l);
    else out.set(l.source_id, [l]);
  }
  return out;
}

/** Live links touching a memory (as source or target): upstream GET /api/v1/links/{id}. */
export async function linksOf(db: Exec, id: string): Promise<StoredLink[]> {
  const rows = await db
    .select()
    .from(memoryLinks)
    .where(and(or(eq(memoryLinks.sourceId, id), eq(memoryLinks.targetId, id)), LIVE_LINK, BOTH_ENDS_STORED))
    .orderBy(asc(memoryLinks.sourceId), asc(memoryLinks.targetId), asc(memoryLinks.relation));
  return rows.map(linkFromRow);
}

/** Ids among `ids` that name a stored, not deleted memory (archived included). */
async function knownIds(tx: Exec, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await tx.select({ id: memories.id }).from(memories).where(and(inArray(memories.id, [...new Set(ids)]), isNull(memories.deletedAt)));
  return new Set(rows.map((r) => r.id));
}

/**
 * Applies link creations (LWW element set: created_at only moves forward) and removals
 * (removed_at only moves forward; a removal of an unknown link is stored so an older
 * creation arriving later stays removed). A creation whose source or target memory is
 * not stored (yet) is stored all the same and served once both ends are: upstream pushes a
 * link in its own request, which may overtake the memories' own pushes.
 */
export async function applyLinkChanges(tx: Tx, links: MemoryLink[], removals: LinkRemoval[], attestLevel = 'unsigned'): Promise<{ applied: MemoryLink[]; noop: MemoryLink[]; removed: LinkRemoval[]; changedSources: string[] }> {
  const applied: MemoryLink[] = [];
  const noop: MemoryLink[] = [];
  for (const l of links) {
    const res = await tx
      .insert(memoryLinks)
      .values({ sourceId: l.source_id, targetId: l.target_id, relation: l.relation, createdAt: l.created_at, signature: l.signature ?? null, observedBy: l.observed_by ?? null, validFrom: l.valid_from ?? null, validUntil: l.valid_until ?? null, attestLevel })
      .onConflictDoUpdate({
        target: [memoryLinks.sourceId, memoryLinks.targetId, memoryLinks.relation],
        set: { createdAt: sql`excluded.created_at`, signature: sql`excluded.signature`, observedBy: sql`excluded.observed_by`, validFrom: sql`excluded.valid_from`, validUntil: sql`excluded.valid_until` },
        setWhere: sql`excluded.created_at > ${memoryLinks.createdAt}`,
      })
      .returning({ s: memoryLinks.sourceId });
    (res.length > 0 ? applied : noop).push(l);
  }
  const removed: LinkRemoval[] = [];
  for (const r of removals) {
    const res = await tx
      .insert(memoryLinks)
      .values({ sourceId: r.source_id, targetId: r.target_id, relation: r.relation, createdAt: r.removed_at, removedAt: r.removed_at })
      .onConflictDoUpdate({
        target: [memoryLinks.sourceId, memoryLinks.targetId, memoryLinks.relation],
        set: { removedAt: sql`excluded.removed_at` },
        setWhere: sql`${memoryLinks.removedAt} IS NULL OR excluded.removed_at > ${memoryLinks.removedAt}`,
      })
      .returning({ s: memoryLinks.sourceId });
    if (res.length > 0) removed.push(r);
  }
  const changedSources = [...new Set([...applied.map((l) => l.source_id), ...removed.map((r) => r.source_id)])];
  return { applied, noop, removed, changedSources };
}

export type LinkResult = { kind: 'ok'; created: boolean; position: FeedPosition | null } | { kind: 'not_found'; which: 'source' | 'target' };

/** The stored link under this key, locked for the rest of the transaction (null when never seen). */
async function lockLink(tx: Tx, key: { source_id: string; target_id: string; relation: LinkRelation }) {
  const [cur] = await tx
    .select()
    .from(memoryLinks)
    .where(and(eq(memoryLinks.sourceId, key.source_id), eq(memoryLinks.targetId, key.target_id), eq(memoryLinks.relation, key.relation)))
    .for('update');
  return cur ? linkFromRow(cur) : null;
}

/** Local link creation (upstream POST /api/v1/links): a duplicate of a live link is a no-op. */
export async function createLink(db: Db, key: { source_id: string; target_id: string; relation: LinkRelation }, nowMicros: number): Promise<LinkResult> {
  return db.transaction(async (tx) => {
    const known = await knownIds(tx, [key.source_id, key.target_id]);
    if (!known.has(key.source_id)) return { kind: 'not_found', which: 'source' } as const;
    if (!known.has(key.target_id)) return { kind: 'not_found', which: 'target' } as const;
    const stored = await lockLink(tx, key);
    if (stored && isLinkLive(stored)) return { kind: 'ok', created: false, position: null } as const;
    const at = eventTime(nowMicros, stored?.removed_at, stored?.created_at);
    await applyLinkChanges(tx, [{ ...key, created_at: at }], [], 'unsigned');
    const position = await appendChanges(tx, [{ memoryId: key.source_id, op: 'link' }]);
    return { kind: 'ok', created: true, position } as const;
  });
}

/** Local link removal (upstream DELETE /api/v1/links): false when no live link. */
export async function removeLink(db: Db, key: { source_id: string; target_id: string; relation: LinkRelation }, nowMicros: number): Promise<{ removed: boolean; position: FeedPosition | null }> {
  return db.transaction(async (tx) => {
    const stored = await lockLink(tx, key);
    if (!stored || !isLinkLive(stored)) return { removed: false, position: null };
    const at = eventTime(nowMicros, stored.created_at);
    await tx
      .update(memoryLinks)
      .set({ removedAt: at })
      .where(and(eq(memoryLinks.sourceId, key.source_id), eq(memoryLinks.targetId, key.target_id), eq(memoryLinks.relation, key.relation)));
    const position = await appendChanges(tx, [{ memoryId: key.source_id, op: 'link' }]);
    return { removed: true, position };
  });
}


