import { getTableName, sql } from 'drizzle-orm';
import { clientOf, type Db, type Tx } from '../db/client.js';
import { retryOnConflict } from '../db/conflicts.js';
import { memories } from '../db/schema.js';
import { inTextList } from './lists.js';
import { compareVersions, type Memory } from '../memory/model.js';
import { dropEveryTenthUpdate } from '../test-faults.js';
import { appendChanges, appendChangesFrom, lastPositionOf, type FeedPosition } from './feed.js';
import type { LinkRemoval, MemoryLink } from '../memory/link.js';
import { applyArchiveEvents, applyLinkChanges, linksBySource, type ArchiveEvent } from './archive-links.js';
import { RECORDSET_COLUMNS, recordsetJson, storedColumns, storedFromRow, type StoredMemory } from './memories.js';
import { collectedThrough } from './expiry.js';
import { beyondTombstoneGrace, isExpired } from '../memory/expiry.js';
import { nowMicros, parseTimestamp } from '../memory/time.js';

/**
 * A deletion as replicated: the id and the tombstone's LWW time. `untimed`: the sender
 * gave no time (upstream's `deletions` lane); `deleted_at` is then the receiver's best
 * bound, and such a deletion only removes a memory stored here, never leaving a
 * tombstone for an id this node has not seen.
 */
export interface Tombstone {
  id: string;
  deleted_at: string;
  untimed?: true;
}

/** A row refused as beyond_tombstone_grace (see applyReplicated's `guard`). */
export interface GraceRefusal {
  id: string;
  lane: 'memories' | 'tombstones';
  /** The row's LWW time. */
  at: string;
}

/** Guard of a replicated apply against resurrection (docs/operations.md, "Tombstone GC", "Tier expiry"). */
export interface ApplyGuard {
  /** TOMBSTONE_GRACE_MS: rows newer than now - grace cannot be covered by a collected tombstone. */
  graceMs: number;
}

export interface ApplyOutcome {
  /** Rows refused as beyond_tombstone_grace (not applied, not in `noop`). */
  refused: GraceRefusal[];
  /** Memories that arrived already expired: replaced an older version (hidden), lost LWW, or were not stored (nothing of the id here). */
  expired: { applied: string[]; noop: string[]; discarded: string[] };
  applied: string[];
  deleted: string[];
  noop: string[];
  /** Archive events that changed a register, by kind; the rest of `archives` were no-ops. */
  archived: string[];
  restored: string[];
  archiveNoop: string[];
  links: LinkOutcome;
  position: FeedPosition | null;
}

export interface LinkOutcome {
  applied: MemoryLink[];
  noop: MemoryLink[];
  removed: LinkRemoval[];
}

const NO_LINKS: LinkOutcome = { applied: [], noop: [], removed: [] };

/** Keeps, per id, the version that wins LWW (a batch may name one id twice). */
function dedupeMemories(rows: Memory[]): Memory[] {
  const best = new Map<string, Memory>();
  for (const m of rows) {
    const cur = best.get(m.id);
    if (!cur || compareVersions({ memory: m, deletedAt: null }, { memory: cur, deletedAt: null }) > 0) best.set(m.id, m);
  }
  return [...best.values()];
}

function dedupeTombstones(rows: Tombstone[]): Tombstone[] {
  const best = new Map<string, Tombstone>();
  for (const t of rows) {
    const cur = best.get(t.id);
    if (!cur || t.deleted_at > cur.deleted_at) best.set(t.id, t);
  }
  return [...best.values()];
}

/*
 * The LWW order of a stored version is (time, kind, digest): time = deleted_at for a
 * tombstone else updated_at; kind 1 for a tombstone so deletion wins a timestamp tie;
 * digest (SHA-256 of the canonical doc) breaks remaining ties the same on every node.
 * Each apply is one INSERT .. ON CONFLICT .. WHERE incoming > stored, so concurrent
 * applies of one id serialize on the row and the greater version always ends up stored.
 */
const STORED_ORDER = `(COALESCE(m.deleted_at, m.updated_at), CASE WHEN m.deleted_at IS NULL THEN 0 ELSE 1 END, m.digest COLLATE "C")`;

/**
 * The LWW upsert of memories ($1: recordset JSON) with the feed rows (origin $2) of the
 * rows it changed, in one prepared statement.
 */
const UPSERT_SQL = `
  WITH applied AS (
    INSERT INTO ${getTableName(memories)} AS m (id, namespace, tier, title, agent_id, tags, created_at, updated_at, expires_at, deleted_at, version, digest, doc)
    SELECT r.id, r.namespace, r.tier, r.title, r.agent_id, r.tags, r.created_at, r.updated_at, r.expires_at, NULL, r.version, r.digest, r.doc
    FROM jsonb_to_recordset($1::jsonb) AS r(${RECORDSET_COLUMNS})
    ON CONFLICT (id) DO UPDATE SET
      namespace = excluded.namespace, tier = excluded.tier, title = excluded.title, agent_id = excluded.agent_id,
      tags = excluded.tags, created_at = excluded.created_at, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
      deleted_at = NULL, version = excluded.version, digest = excluded.digest, doc = excluded.doc
    WHERE (excluded.updated_at, 0, excluded.digest COLLATE "C") > ${STORED_ORDER}
    RETURNING id)
  ${appendChangesFrom('applied', 'upsert', '$2')}`;

/**
 * Rows per upsert statement. Several statements of one apply are in flight on its
 * connection at once: the next chunk is encoded while Postgres applies the one before
 * (a 500-row push is four statements). It also bounds one statement's size (a since page
 * may hold 10,000 rows).
 */
const UPSERT_CHUNK = 125;

/** Rows per tombstone statement (bounds one statement's size). */
const TOMBSTONE_CHUNK = 1000;

/** Lets the driver write a statement to its socket before the next one is encoded. */
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

function chunks<T>(rows: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Applies replicated memories and tombstones in one transaction with LWW, appending a
 * change-feed row (origin = the peer) for each row that changed, so the change flows on
 * to the other peers but is never echoed back to its origin.
 */
export async function applyReplicated(
  db: Db,
  input: {
    memories: Memory[];
    tombstones: Tombstone[];
    archives?: ArchiveEvent[];
    links?: MemoryLink[];
    linkRemovals?: LinkRemoval[];
    originPeer: string | null;
    /** Recordset rows of some of `memories`, encoded ahead (src/federation/served-rows.ts). */
    encoded?: ReadonlyMap<Memory, string>;
  },
  /** Runs inside the applying transaction (catch-up stores its watermark and refusals here). */
  inTransaction?: (tx: Tx, refused: GraceRefusal[]) => Promise<void>,
  /** Rows from a peer are guarded; a local or bootstrap apply passes none. */
  guard?: ApplyGuard,
): Promise<ApplyOutcome> {
  // In id order: two applies that share ids take their row locks in the same order, so
  // they wait for each other instead of deadlocking.
  const allMems = dropEveryTenthUpdate(dedupeMemories(input.memories)).sort(byId);
  const allTombs = dedupeTombstones(input.tombstones).sort(byId);
  const archives = input.archives ?? [];
  const links = input.links ?? [];
  const linkRemovals = input.linkRemovals ?? [];
  if (allMems.length === 0 && allTombs.length === 0 && archives.length === 0 && links.length === 0 && linkRemovals.length === 0 && !inTransaction) {
    return { refused: [], expired: { applied: [], noop: [], discarded: [] }, applied: [], deleted: [], noop: [], archived: [], restored: [], archiveNoop: [], links: NO_LINKS, position: null };
  }
  // Ids sorted per lane, not across lanes (a tombstone of one apply may be a memory of
  // another): two applies can still deadlock, and the aborted one runs again.
  return retryOnConflict(() => db.transaction(async (tx) => {
    const screen = guard ? await screenArrivals(tx, allMems, allTombs, guard) : { refused: [], discarded: new Set<string>(), expired: new Set<string>() };
    const out = new Set([...screen.refused.map((r) => `${r.lane}:${r.id}`), ...[...screen.discarded].map((id) => `memories:${id}`)]);
    const mems = allMems.filter((m) => !out.has(`memories:${m.id}`));
    const tombs = allTombs.filter((t) => !out.has(`tombstones:${t.id}`));
    const applied: string[] = [];
    const deleted: string[] = [];
    const origin = input.originPeer;
    let upserted: FeedPosition | null = null;
    // Chunks in flight at once, each one JSON parameter appending its own feed rows.
    // `catch` starts a statement (postgres.js runs a query once it is awaited or caught)
    // and handles its failure at once; the first failure in order is what is thrown (it
    // aborts the transaction, so the later statements fail behind it).
    const client = clientOf(tx);
    const sent: Array<Promise<Array<{ memory_id: string; txid: string; seq: string }>>> = [];
    for (const chunk of chunks(mems, UPSERT_CHUNK)) {
      const statement = client.unsafe(UPSERT_SQL, [recordsetJson(chunk, input.encoded), origin], { prepare: true }) as unknown as Promise<Array<{ memory_id: string; txid: string; seq: string }>>;
      statement.catch(() => undefined);
      sent.push(statement);
      if (sent.length * UPSERT_CHUNK < mems.length) await yieldToIo();
    }
    for (const statement of sent) {
      const res = await statement;
      for (const r of res) applied.push(r.memory_id);
      upserted = lastPositionOf([upserted, ...res]);
    }
    // Time-less deletions of ids never stored here are no-ops (as upstream's delete of an
    // unknown id): a tombstone stamped with a guessed time would block a later create.
    const known = await knownIds(tx, tombs.filter((t) => t.untimed).map((t) => t.id));
    for (const chunk of chunks(tombs.filter((t) => !t.untimed || known.has(t.id)), TOMBSTONE_CHUNK)) {
      const rows = chunk.map((t) => ({
        id: t.id,
        namespace: '',
        tier: 'mid',
        title: '',
        agentId: null,
        tags: [] as string[],
        createdAt: t.deleted_at,
        updatedAt: t.deleted_at,
        expiresAt: null,
        deletedAt: t.deleted_at,
        version: 0,
        digest: '',
        // A tombstone for an id never seen still blocks an older copy arriving later.
        doc: { id: t.id },
      }));
      const res = await tx
        .insert(memories)
        .values(rows)
        .onConflictDoUpdate({
          target: memories.id,
          set: { deletedAt: sql`excluded.deleted_at` },
          setWhere: sql`(excluded.deleted_at, 1) > (COALESCE(${memories.deletedAt}, ${memories.updatedAt}), CASE WHEN ${memories.deletedAt} IS NULL THEN 0 ELSE 1 END)`,
        })
        .returning({ id: memories.id });
      deleted.push(...res.map((r) => r.id));
    }
    const changed = new Set([...applied, ...deleted]);
    // A discarded expired arrival is a no-op: nothing of it is here, as nothing of it is served anywhere.
    const noop = [...mems.map((m) => m.id), ...tombs.map((t) => t.id), ...screen.discarded].filter((id) => !changed.has(id));
    const expiredHeld = [...screen.expired].filter((id) => !screen.discarded.has(id));
    const expired = { applied: expiredHeld.filter((id) => changed.has(id)), noop: expiredHeld.filter((id) => !changed.has(id)), discarded: [...screen.discarded] };
    // After the memories: an archive or link in the same body may name a memory just applied.
    const arch = archives.length > 0 ? await applyArchiveEvents(tx, archives) : { archived: [], restored: [] };
    const archChanged = new Set([...arch.archived, ...arch.restored]);
    const archiveNoop = [...new Set(archives.map((e) => e.id))].filter((id) => !archChanged.has(id));
    const linkOut = links.length > 0 || linkRemovals.length > 0 ? await applyLinkChanges(tx, links, linkRemovals) : { ...NO_LINKS, changedSources: [] };
    const rest = await appendChanges(tx, [
      ...deleted.map((id) => ({ memoryId: id, op: 'delete' as const, originPeer: origin })),
      ...arch.archived.map((id) => ({ memoryId: id, op: 'archive' as const, originPeer: origin })),
      ...arch.restored.map((id) => ({ memoryId: id, op: 'restore' as const, originPeer: origin })),
      ...linkOut.changedSources.map((id) => ({ memoryId: id, op: 'link' as const, originPeer: origin })),
    ]);
    const position = lastPositionOf([upserted, rest]);
    if (inTransaction) await inTransaction(tx, screen.refused);
    const { changedSources: _c, ...linkOutcome } = linkOut;
    return { refused: screen.refused, expired, applied, deleted, noop, archived: arch.archived, restored: arch.restored, archiveNoop, links: linkOutcome, position };
  }));
}

/**
 * Screens rows from a peer before they are applied, inside the applying transaction:
 * - beyond_tombstone_grace: a version of an id held nowhere here (no row, no tombstone)
 *   no newer than the newest tombstone this node collected may be the old copy of a
 *   deleted memory whose tombstone is gone: refused (never resurrected);
 * - a memory already expired for an id held nowhere here is not stored (it would be
 *   served nowhere and swept); one for an id held here goes through LWW (a newer expired
 *   version must still replace an older live one, or the replicas would differ).
 * Only rows older than the grace horizon or the mark, or expired, are looked at (live
 * replication pays one read of the mark). Their ids are locked first and the mark read
 * again after: a tombstone GC committing meanwhile is waited for and its raised mark seen.
 */
async function screenArrivals(tx: Tx, mems: Memory[], tombs: Tombstone[], guard: ApplyGuard) {
  const now = nowMicros();
  const horizon = now - guard.graceMs * 1000;
  // Candidates: rows older than the grace horizon (a GC committing meanwhile collects only
  // tombstones older than it) or no newer than the mark already raised (which a longer
  // TOMBSTONE_GRACE_MS set since may put after the horizon).
  const marked = await collectedThrough(tx);
  const old = (ts: string) => {
    const t = parseTimestamp(ts) ?? 0;
    return t < horizon || (marked !== null && t <= marked);
  };
  const expired = new Set(mems.filter((m) => isExpired(m, now)).map((m) => m.id));
  const oldMems = mems.filter((m) => old(m.updated_at));
  const oldTombs = tombs.filter((t) => !t.untimed && old(t.deleted_at));
  const refused: GraceRefusal[] = [];
  const discarded = new Set<string>();
  const ids = [...new Set([...expired, ...oldMems.map((m) => m.id), ...oldTombs.map((t) => t.id)])];
  if (ids.length === 0) return { refused, discarded, expired };
  const held = await knownIds(tx, ids);
  const through = oldMems.length + oldTombs.length > 0 ? await collectedThrough(tx) : null;
  const beyond = (ts: string, id: string) => beyondTombstoneGrace(parseTimestamp(ts) ?? 0, held.has(id), through);
  for (const m of oldMems) if (beyond(m.updated_at, m.id)) refused.push({ id: m.id, lane: 'memories', at: m.updated_at });
  for (const t of oldTombs) if (beyond(t.deleted_at, t.id)) refused.push({ id: t.id, lane: 'tombstones', at: t.deleted_at });
  const refusedMems = new Set(refused.filter((r) => r.lane === 'memories').map((r) => r.id));
  for (const id of expired) if (!held.has(id) && !refusedMems.has(id)) discarded.add(id);
  return { refused, discarded, expired: new Set([...expired].filter((id) => !refusedMems.has(id))) };
}

/** The rows a guarded apply would refuse as beyond_tombstone_grace, applying nothing (a dry run). */
export async function graceRefusals(db: Db, rows: { memories: Memory[]; tombstones: Tombstone[] }, guard: ApplyGuard): Promise<GraceRefusal[]> {
  return db.transaction(async (tx) => (await screenArrivals(tx, dedupeMemories(rows.memories), dedupeTombstones(rows.tombstones), guard)).refused);
}

/** Which of the ids have a row here (live or tombstone), locked against a concurrent create. */
async function knownIds(tx: Tx, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await tx.select({ id: memories.id }).from(memories).where(inTextList(memories.id, ids)).for('update');
  return new Set(rows.map((r) => r.id));
}

/** Current stored rows (live or tombstone, with archive register and outgoing links) for ids, to build outbound batches. */
export async function loadStored(db: Db | Tx, ids: string[]): Promise<Map<string, StoredMemory>> {
  if (ids.length === 0) return new Map();
  // Both at once: a tombstone's links are read too and dropped (a tombstone carries none).
  const [rows, links] = await Promise.all([db.select({ id: memories.id, ...storedColumns }).from(memories).where(inTextList(memories.id, ids)), linksBySource(db, ids)]);
  return new Map(rows.map((r) => [r.id, { ...storedFromRow(r), links: r.deletedAt === null ? (links.get(r.id) ?? []) : [] }]));
}
