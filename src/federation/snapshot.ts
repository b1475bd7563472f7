import type { Db } from '../db/client.js';
import { encodeCursor } from '../store/feed.js';
import type { Tombstone } from '../store/replica.js';
import { loadStored } from '../store/replica.js';
import { snapshotIds, startSnapshot, touchSnapshot, type Snapshot } from '../store/retention.js';
import { itemFromStored, type Item } from './feed-page.js';
import { pushBodyOf } from './wire.js';

/*
 * Snapshot bootstrap (docs/wire.md, "Snapshot bootstrap"): a consistent copy of the
 * current state, paged by memory id, for a reader whose feed position is behind the
 * retained horizon. The snapshot's position P is the feed head when it started: every
 * change at or before P is in the copy (or superseded by a later one), every change after
 * P is still in the feed (retention keeps it while the snapshot is live). A reader that
 * applies every page and then reads the feed after P has everything.
 */

/** Page token: `s1.<snapshot id>.<base64url of the last id served>`. */
export function encodeSnapshotToken(snapshotId: string, lastId: string): string {
  return `s1.${snapshotId}.${Buffer.from(lastId, 'utf8').toString('base64url')}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TOKEN_MAX = 1024;

export function decodeSnapshotToken(token: string): { snapshotId: string; lastId: string } | null {
  if (token.length > TOKEN_MAX) return null;
  const m = /^s1\.([0-9a-f-]{36})\.([A-Za-z0-9_-]{1,700})$/.exec(token);
  if (!m || !UUID.test(m[1]!)) return null;
  const lastId = Buffer.from(m[2]!, 'base64url').toString('utf8');
  // Round-trips only for canonical base64url of valid UTF-8 without NUL (ids never hold one).
  if (lastId.length === 0 || lastId.includes('\u0000') || Buffer.from(lastId, 'utf8').toString('base64url') !== m[2]) return null;
  return { snapshotId: m[1]!, lastId };
}

/** The holder of the snapshot a peer pages through (one per peer: a new one replaces it). */
export const servedHolder = (peerId: string) => `serve:${peerId}`;
/** The holder of the snapshot this node pushes to a peer. */
export const pushHolder = (peerId: string) => `push:${peerId}`;

export interface SnapshotRows {
  items: Item[];
  /** The last id covered (the next page starts after it); undefined: none left. */
  lastId: string | undefined;
  /** More rows may follow. */
  more: boolean;
}

/**
 * The next rows of a snapshot after `afterId`: up to `limit`, cut before `maxBytes`
 * (a page always holds at least one row).
 */
export async function snapshotRows(db: Db, afterId: string | null, limit: number, maxBytes: number): Promise<SnapshotRows> {
  const ids = await snapshotIds(db, afterId, limit);
  const stored = await loadStored(db, ids);
  const items: Item[] = [];
  let bytes = 0;
  let lastId: string | undefined;
  let cut = false;
  for (const id of ids) {
    const s = stored.get(id);
    if (s) {
      const item = itemFromStored(s);
      if (items.length > 0 && bytes + item.bytes > maxBytes) {
        cut = true;
        break;
      }
      items.push(item);
      bytes += item.bytes;
    }
    lastId = id;
  }
  return { items, lastId, more: cut || ids.length === limit };
}

export type SnapshotPageResult = { ok: true; page: ReturnType<typeof pageBody>; snapshot: Snapshot; rows: number } | { ok: false; reason: 'expired' };

function pageBody(snapshot: Snapshot, rows: SnapshotRows, limit: number) {
  const memories = rows.items.flatMap((i) => (i.kind === 'memory' ? [i.memory] : []));
  const tombstones: Tombstone[] = rows.items.flatMap((i) => (i.kind === 'tombstone' ? [i.tombstone] : []));
  const lanes = pushBodyOf('', '', rows.items);
  return {
    count: memories.length,
    limit,
    memories,
    tombstones,
    archive_events: lanes.archive_events ?? [],
    links: lanes.links ?? [],
    link_removals: lanes.link_removals ?? [],
    /** Where the reader's feed cursor goes after the last page. */
    snapshot_cursor: encodeCursor(snapshot.position),
    next_token: rows.more && rows.lastId !== undefined ? encodeSnapshotToken(snapshot.snapshotId, rows.lastId) : null,
    has_more: rows.more && rows.lastId !== undefined,
  };
}

/**
 * One page of `peerId`'s snapshot: the first (no token) starts a new one, replacing any
 * it had; a later page continues the one its token names, if it is still live (else
 * `expired`: the reader starts again).
 */
export async function snapshotPage(db: Db, peerId: string, token: { snapshotId: string; lastId: string } | null, limit: number, opts: { ttlMs: number; maxBytes: number }): Promise<SnapshotPageResult> {
  const holder = servedHolder(peerId);
  const snapshot = token === null ? await startSnapshot(db, holder) : await touchSnapshot(db, holder, opts.ttlMs, token.snapshotId);
  if (!snapshot) return { ok: false, reason: 'expired' };
  const rows = await snapshotRows(db, token?.lastId ?? null, limit, opts.maxBytes);
  return { ok: true, page: pageBody(snapshot, rows, limit), snapshot, rows: rows.items.length };
}
