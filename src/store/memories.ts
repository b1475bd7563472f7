import { and, arrayContains, asc, desc, eq, getTableName, gt, isNull, lte, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { memories } from '../db/schema.js';
import { canonicalJson, digestOfCanonical, memoryDigest, orderKeys, type Memory } from '../memory/model.js';
import type { MemoryLink } from '../memory/link.js';
import { formatTimestamp, nowMicros, parseTimestamp } from '../memory/time.js';
import { isExpired } from '../memory/expiry.js';
import { appendChanges, appendChangesFrom, comparePositions, type FeedPosition } from './feed.js';

type Exec = Db | Tx;


/** A memory's archive register (null when never archived); see store/archive-links.ts for the LWW rule. */
export interface ArchiveState {
  archivedAt: string | null;
  changedAt: string;
  reason?: string | null;
}

/** Archived (effectively): the last event was an archive no older than the content version. */
export function isArchived(state: ArchiveState | null | undefined, updatedAt: string): boolean {
  return !!state && state.archivedAt !== null && (parseTimestamp(state.archivedAt) ?? 0) >= (parseTimestamp(updatedAt) ?? 0);
}

/** The same rule in SQL, on the memories row. */
export const ARCHIVED = sql`(${memories.archivedAt} IS NOT NULL AND ${memories.archivedAt} >= ${memories.updatedAt})`;
export const NOT_ARCHIVED = sql`NOT ${ARCHIVED}`;

/** Not expired at the statement's time (expires_at <= now is expired: src/memory/expiry.ts). */
export const NOT_EXPIRED = sql`(${memories.expiresAt} IS NULL OR ${memories.expiresAt} > now())`;

/** A link as stored: the wire link, its removal time (null: never removed) and attest level. */
export interface StoredLink extends MemoryLink {
  removed_at: string | null;
  attest_level: string;
}

/** A stored row: the memory plus its tombstone time, if deleted, its archive register and outgoing links. */
export interface StoredMemory {
  memory: Memory;
  deletedAt: string | null;
  digest: string;
  archive?: ArchiveState | null;
  /** Every stored link from this memory, live and removed (set by loadStored). */
  links?: StoredLink[];
}

/** The agent_id column: metadata.agent_id when it is a string. */
function agentIdOf(m: Memory): string | null {
  const id = (m.metadata as Record<string, unknown>).agent_id;
  return typeof id === 'string' ? id : null;
}

function toRow(m: Memory, deletedAt: string | null = null) {
  return {
    id: m.id,
    namespace: m.namespace,
    tier: m.tier,
    title: m.title,
    agentId: agentIdOf(m),
    tags: m.tags,
    createdAt: m.created_at,
    updatedAt: m.updated_at,
    expiresAt: m.expires_at ?? null,
    deletedAt,
    version: m.version,
    digest: memoryDigest(m),
    doc: m,
  };
}

const fromRow = (r: { doc: unknown; deletedAt: string | null; digest: string; archivedAt?: string | null; archiveChangedAt?: string | null; archiveReason?: string | null }): StoredMemory => ({
  // jsonb stores keys in its own order; serve them in wire order.
  memory: orderKeys(r.doc as Memory),
  deletedAt: r.deletedAt === null ? null : normalizeDbTime(r.deletedAt),
  digest: r.digest,
  archive: r.archiveChangedAt ? { archivedAt: r.archivedAt ? normalizeDbTime(r.archivedAt) : null, changedAt: normalizeDbTime(r.archiveChangedAt), reason: r.archiveReason ?? null } : null,
});

/** The columns fromRow reads. */
export const storedColumns = { doc: memories.doc, deletedAt: memories.deletedAt, digest: memories.digest, archivedAt: memories.archivedAt, archiveChangedAt: memories.archiveChangedAt, archiveReason: memories.archiveReason };

/** Postgres renders `2026-01-02 03:04:05.123456+00`; bring it to the wire form. */
export function normalizeDbTime(v: string): string {
  const micros = parseTimestamp(v.replace(' ', 'T').replace(/\+00$/, '+00:00'));
  if (micros === null) throw new Error(`unexpected timestamp from database: ${v}`);
  return formatTimestamp(micros);
}

/**
 * Rows as one JSON parameter for `jsonb_to_recordset(...) AS r(RECORDSET_COLUMNS)`: one
 * parameter however many rows (a multi-row VALUES list costs 12 bound parameters a row to
 * build, send and parse).
 */
export function recordsetJson(docs: Memory[], encoded?: ReadonlyMap<Memory, string>): string {
  // The same text as JSON.stringify of the array of rows; a row already encoded is reused.
  let out = '[';
  for (let i = 0; i < docs.length; i++) out += (i === 0 ? '' : ',') + (encoded?.get(docs[i]!) ?? recordsetRow(docs[i]!));
  return `${out}]`;
}

/**
 * One memory's row of recordsetJson (its digest computed here). The doc is the canonical
 * JSON the digest is taken over (jsonb keeps no key order), so the memory is serialized once.
 */
export function recordsetRow(d: Memory): string {
  const canonical = canonicalJson(d);
  const row = JSON.stringify({
    id: d.id, namespace: d.namespace, tier: d.tier, title: d.title, agent_id: agentIdOf(d), tags: d.tags,
    created_at: d.created_at, updated_at: d.updated_at, expires_at: d.expires_at ?? null, version: d.version, digest: digestOfCanonical(canonical),
  });
  return `${row.slice(0, -1)},"doc":${canonical}}`;
}

export const RECORDSET_COLUMNS = 'id text, namespace text, tier text, title text, agent_id text, tags text[], created_at timestamptz, updated_at timestamptz, expires_at timestamptz, version integer, digest text, doc jsonb';

const INSERT_NEW_SQL = `
  WITH ins AS (
    INSERT INTO ${getTableName(memories)} (id, namespace, tier, title, agent_id, tags, created_at, updated_at, expires_at, version, digest, doc)
    SELECT r.id, r.namespace, r.tier, r.title, r.agent_id, r.tags, r.created_at, r.updated_at, r.expires_at, r.version, r.digest, r.doc
    FROM jsonb_to_recordset($1::jsonb) AS r(${RECORDSET_COLUMNS})
    ON CONFLICT (id) DO NOTHING
    RETURNING id
  )
  ${appendChangesFrom('ins', 'upsert', 'NULL')}`;

/**
 * Inserts new memories and their change-feed rows in one transaction. Ids that already
 * exist (live or tombstoned) are not written and come back in `conflicts`; `positions`
 * holds each created id's feed position (`position` is the last of them).
 */
export async function insertMemories(db: Db, docs: Memory[]): Promise<{ created: Memory[]; conflicts: string[]; position: FeedPosition | null; positions: Map<string, FeedPosition> }> {
  if (docs.length === 0) return { created: [], conflicts: [], position: null, positions: new Map() };
  // One statement (atomic on its own) and one round trip instead of BEGIN, two INSERTs and
  // COMMIT: the rows travel as one JSON parameter; the feed rows are those inserted.
  // Prepared once per connection (drizzle's execute would parse and describe it every time).
  const fed = (await db.$client.unsafe(INSERT_NEW_SQL, [recordsetJson(docs)], { prepare: true })) as unknown as Array<{ memory_id: string; txid: string; seq: string }>;
  const positions = new Map<string, FeedPosition>();
  let position: FeedPosition | null = null;
  for (const f of fed) {
    const p = { txid: f.txid, seq: f.seq };
    positions.set(f.memory_id, p);
    if (!position || comparePositions(p, position) > 0) position = p;
  }
  return { created: docs.filter((d) => positions.has(d.id)), conflicts: docs.filter((d) => !positions.has(d.id)).map((d) => d.id), position, positions };
}

export async function getStored(db: Exec, id: string, opts: { forUpdate?: boolean } = {}): Promise<StoredMemory | null> {
  const q = db.select(storedColumns).from(memories).where(eq(memories.id, id));
  const rows = opts.forUpdate ? await q.for('update') : await q;
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * A live memory, or null for unknown, tombstoned, archived (upstream: archived rows leave
 * `memories`) and expired ids (memfed: an expired memory is served nowhere).
 */
export async function getMemory(db: Exec, id: string): Promise<Memory | null> {
  const row = await getStored(db, id);
  return row && row.deletedAt === null && !isArchived(row.archive, row.memory.updated_at) && !isExpired(row.memory, nowMicros()) ? row.memory : null;
}

export interface ListFilters {
  namespace?: string;
  tier?: string;
  tags?: string[];
  since?: string;
  until?: string;
  limit: number;
  offset: number;
}

/** Live, not archived, not expired memories, newest change first; `since`/`until` bound `updated_at` (since exclusive). */
export async function listMemories(db: Exec, f: ListFilters): Promise<Memory[]> {
  const conds = [isNull(memories.deletedAt), NOT_ARCHIVED, NOT_EXPIRED];
  if (f.namespace !== undefined) conds.push(eq(memories.namespace, f.namespace));
  if (f.tier !== undefined) conds.push(eq(memories.tier, f.tier));
  if (f.tags && f.tags.length > 0) conds.push(arrayContains(memories.tags, f.tags));
  if (f.since !== undefined) conds.push(gt(memories.updatedAt, f.since));
  if (f.until !== undefined) conds.push(lte(memories.updatedAt, f.until));
  const rows = await db
    .select({ doc: memories.doc })
    .from(memories)
    .where(and(...conds))
    .orderBy(desc(memories.updatedAt), asc(memories.id))
    .limit(f.limit)
    .offset(f.offset);
  return rows.map((r) => orderKeys(r.doc as Memory));
}

export type MutationResult = { kind: 'ok'; memory: Memory; position: FeedPosition | null } | { kind: 'not_found' } | { kind: 'version_conflict'; current: number };

/** Local update: row-locked read, caller computes the next doc, write + feed row. */
export async function updateMemory(
  db: Db,
  id: string,
  next: (current: Memory, nowFloorMicros: number) => Memory,
  expectedVersion?: number,
): Promise<MutationResult> {
  return db.transaction(async (tx) => {
    const cur = await getStored(tx, id, { forUpdate: true });
    // An archived memory is not updatable until restored (upstream: it is not in `memories`);
    // an expired one is gone for every reader, so for writers too (the sweep removes it).
    if (!cur || cur.deletedAt !== null || isArchived(cur.archive, cur.memory.updated_at) || isExpired(cur.memory, nowMicros())) return { kind: 'not_found' } as const;
    if (expectedVersion !== undefined && expectedVersion !== cur.memory.version) return { kind: 'version_conflict', current: cur.memory.version } as const;
    // Never move updated_at backwards, even under clock skew: the new version must win LWW.
    const floor = (parseTimestamp(cur.memory.updated_at) ?? 0) + 1;
    const memory = next(cur.memory, floor);
    const row = toRow(memory);
    await tx.update(memories).set(row).where(eq(memories.id, id));
    const position = await appendChanges(tx, [{ memoryId: id, op: 'upsert' }]);
    return { kind: 'ok', memory, position } as const;
  });
}

/** Local delete: the row becomes a tombstone carrying its deletion time. */
export async function deleteMemory(db: Db, id: string, nowMicros: number): Promise<MutationResult> {
  return db.transaction(async (tx) => {
    const cur = await getStored(tx, id, { forUpdate: true });
    // An expired memory is not there to delete: every node sweeps it by itself.
    if (!cur || cur.deletedAt !== null || isExpired(cur.memory, nowMicros)) return { kind: 'not_found' } as const;
    const floor = (parseTimestamp(cur.memory.updated_at) ?? 0) + 1;
    const deletedAt = formatTimestamp(Math.max(nowMicros, floor));
    await tx.update(memories).set({ deletedAt }).where(eq(memories.id, id));
    const position = await appendChanges(tx, [{ memoryId: id, op: 'delete' }]);
    return { kind: 'ok', memory: cur.memory, position } as const;
  });
}

export async function countLive(db: Exec): Promise<number> {
  const [r] = await db.select({ n: sql<number>`count(*)::int` }).from(memories).where(isNull(memories.deletedAt));
  return r?.n ?? 0;
}

export { toRow as memoryRow, fromRow as storedFromRow };

/** Live, not archived, not expired memories with exactly this `updated_at` and an id after `afterId`, by id (the rest of a page's last timestamp). */
export async function memoriesAtUpdatedAfterId(db: Exec, updatedAt: string, afterId: string, limit: number): Promise<Memory[]> {
  const rows = await db
    .select({ doc: memories.doc })
    .from(memories)
    .where(and(isNull(memories.deletedAt), NOT_ARCHIVED, NOT_EXPIRED, eq(memories.updatedAt, updatedAt), gt(memories.id, afterId)))
    .orderBy(asc(memories.id))
    .limit(limit);
  return rows.map((r) => orderKeys(r.doc as Memory));
}

/**
 * Upstream `since` form: live, not archived, not expired memories with updated_at > since,
 * oldest first (the filter is in the query, so a page is never short for rows it skipped).
 */
export async function memoriesUpdatedSince(db: Exec, since: string | null, limit: number): Promise<Memory[]> {
  const conds = [isNull(memories.deletedAt), NOT_ARCHIVED, NOT_EXPIRED];
  if (since !== null) conds.push(gt(memories.updatedAt, since));
  const rows = await db.select({ doc: memories.doc }).from(memories).where(and(...conds)).orderBy(asc(memories.updatedAt), asc(memories.id)).limit(limit);
  return rows.map((r) => orderKeys(r.doc as Memory));
}
