import type { Db } from '../db/client.js';
import type { Memory } from '../memory/model.js';
import { readFeed, type FeedEntry, type FeedPosition } from '../store/feed.js';
import { readHorizon } from '../store/retention.js';
import { archiveEventOf, type ArchiveEvent } from '../store/archive-links.js';
import type { StoredLink, StoredMemory } from '../store/memories.js';
import { loadStored, type Tombstone } from '../store/replica.js';
import { isExpired } from '../memory/expiry.js';
import { nowMicros } from '../memory/time.js';

/**
 * One row to deliver: a memory's current state (content, archive register, outgoing
 * links), or its tombstone.
 */
export type Item = { kind: 'memory'; memory: Memory; archive?: ArchiveEvent; links?: StoredLink[]; bytes: number } | { kind: 'tombstone'; tombstone: Tombstone; bytes: number };

export const itemId = (i: Item) => (i.kind === 'memory' ? i.memory.id : i.tombstone.id);

/*
 * `bytes` is what an item adds to a push body (buildPushBody), the largest form it is
 * sent in: a memory once in `memories`; a tombstone's id in `deletions` plus the
 * tombstone itself in `tombstones`; each with its comma.
 */
export const memoryItem = (memory: Memory, extra: { archive?: ArchiveEvent; links?: StoredLink[] } = {}): Item => {
  let bytes = Buffer.byteLength(JSON.stringify(memory)) + 1;
  // An archive event: the id in `archives`/`restores` plus the event in `archive_events`.
  if (extra.archive) bytes += Buffer.byteLength(JSON.stringify(extra.archive.id)) + Buffer.byteLength(JSON.stringify(extra.archive)) + 2;
  // A link in `links` (live) or `link_removals` (removed), never both.
  for (const l of extra.links ?? []) bytes += Buffer.byteLength(JSON.stringify(l)) + 1;
  return { kind: 'memory', memory, ...(extra.archive ? { archive: extra.archive } : {}), ...(extra.links && extra.links.length > 0 ? { links: extra.links } : {}), bytes };
};
export const tombstoneItem = (tombstone: Tombstone): Item => ({ kind: 'tombstone', tombstone, bytes: Buffer.byteLength(JSON.stringify(tombstone.id)) + Buffer.byteLength(JSON.stringify(tombstone)) + 2 });

export function itemFromStored(s: StoredMemory): Item {
  if (s.deletedAt !== null) return tombstoneItem({ id: s.memory.id, deleted_at: s.deletedAt });
  return memoryItem(s.memory, { ...(s.archive ? { archive: archiveEventOf(s.memory.id, s.archive) } : {}), ...(s.links ? { links: s.links } : {}) });
}

export interface FeedPage {
  /** The latest state of each memory the page covers, once each, in feed order. */
  items: Item[];
  /** Feed entries that stand for a delivered row (repeats of one memory included). */
  delivered: FeedEntry[];
  /** The last entry the page covers: the next page starts after it. */
  last: FeedEntry | undefined;
  /** The byte budget ended the page before the entries did. */
  cut: boolean;
  /** Entries read from the feed (a full read means there may be more). */
  read: number;
  /**
   * The retained horizon, read after the entries: a prune that removed entries this page
   * should have held has moved it by then, so a reader behind it knows the page has a gap.
   */
  horizon: FeedPosition;
}

/**
 * One page of the change feed after `after`, as every sender needs it (push, the cursor
 * form of GET /sync/since): the current state of each memory changed since, once, not
 * echoed to the peer it came from (`excludeOrigin`), and cut at an entry boundary before
 * `maxBytes` would be exceeded (a page always holds at least one row).
 */
export async function readFeedPage(db: Db, after: FeedPosition, limit: number, opts: PageOptions): Promise<FeedPage> {
  const entries = await readFeed(db, after, limit);
  const [stored, horizon] = await Promise.all([loadStored(db, [...new Set(entries.filter((e) => wanted(e, opts)).map((e) => e.memoryId))]), readHorizon(db)]);
  return { ...pageOf(entries, servable(stored, nowMicros()), opts), horizon };
}

/**
 * The stored rows a sender may serve: an expired memory is sent to no peer (every peer
 * holding it expires it by itself; one that missed it never needs it). Its entries are
 * passed like those of a row no longer stored.
 */
export function servable(stored: Map<string, StoredMemory>, now: number): Map<string, StoredMemory> {
  for (const [id, s] of stored) if (s.deletedAt === null && isExpired(s.memory, now)) stored.delete(id);
  return stored;
}

export interface PageOptions {
  excludeOrigin?: string;
  /** Only this node's own writes (no row applied from a peer): a push without relay. */
  localOnly?: boolean;
  maxBytes: number;
}

const wanted = (e: FeedEntry, opts: PageOptions) => (opts.localOnly ? e.originPeer === null : opts.excludeOrigin === undefined || e.originPeer !== opts.excludeOrigin);

/** The page `readFeedPage` returns, from entries read and the stored rows they name. */
export function pageOf(entries: FeedEntry[], stored: Map<string, StoredMemory>, opts: PageOptions): Omit<FeedPage, 'horizon'> {
  const page: Omit<FeedPage, 'horizon'> = { items: [], delivered: [], last: entries.at(-1), cut: false, read: entries.length };
  const included = new Set<string>();
  let bytes = 0;
  for (const e of entries) {
    const s = wanted(e, opts) ? stored.get(e.memoryId) : undefined;
    if (s && !included.has(e.memoryId)) {
      const item = itemFromStored(s);
      if (page.items.length > 0 && bytes + item.bytes > opts.maxBytes) {
        page.cut = true;
        break;
      }
      page.items.push(item);
      included.add(e.memoryId);
      bytes += item.bytes;
    }
    if (s) page.delivered.push(e);
    page.last = e;
  }
  return page;
}
