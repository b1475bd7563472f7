import type { Db } from '../db/client.js';
import type { Memory } from '../memory/model.js';
import { countAfter, encodeCursor, type FeedPosition } from '../store/feed.js';
import { memoriesAtUpdatedAfterId, memoriesUpdatedSince } from '../store/memories.js';
import type { Tombstone } from '../store/replica.js';
import { behindHorizon, endSnapshotPassed } from '../store/retention.js';
import { servedHolder } from './snapshot.js';
import { readFeedPage } from './feed-page.js';
import { pushBodyOf } from './wire.js';

/** Page byte budget for GET /sync/since, well below what a memfed puller accepts (8 MiB). */
export const SINCE_PAGE_MAX_BYTES = 4 * 1024 * 1024;
/** A "remaining" figure is counted up to this (a lag figure, not an exact backlog). */
const REMAINING_CAP = 1_000_000;

/** The envelope both forms share (upstream's `since` response). */
function sinceEnvelope(memories: Memory[], limit: number, since: string | null) {
  let earliest: string | null = null;
  let latest: string | null = null;
  for (const m of memories) {
    if (earliest === null || m.updated_at < earliest) earliest = m.updated_at;
    if (latest === null || m.updated_at > latest) latest = m.updated_at;
  }
  return { count: memories.length, limit, updated_since: since, earliest_updated_at: earliest, latest_updated_at: latest, memories };
}

/**
 * The memfed cursor form: the commit-ordered change feed after `after`, with tombstones,
 * per-row `entries` (so a puller can stop exactly at a row it failed to apply) and
 * `next_cursor`. Changes that came from the caller are not sent back to it.
 */
export async function cursorPage(db: Db, after: FeedPosition, limit: number, caller: string | undefined) {
  const page = await readFeedPage(db, after, limit, { ...(caller !== undefined ? { excludeOrigin: caller } : {}), maxBytes: SINCE_PAGE_MAX_BYTES });
  // A reader behind the horizon (read after the page's entries) is never served a page with a gap.
  if (behindHorizon(after, page.horizon)) return { resync: page.horizon } as const;
  // A caller reading the feed from its snapshot's position on has finished that snapshot.
  if (caller !== undefined) await endSnapshotPassed(db, servedHolder(caller), after);
  const memories = page.items.flatMap((i) => (i.kind === 'memory' ? [i.memory] : []));
  const tombstones: Tombstone[] = page.items.flatMap((i) => (i.kind === 'tombstone' ? [i.tombstone] : []));
  // The archive registers and outgoing links of the memories in the page, as pushed.
  const lanes = pushBodyOf('', '', page.items);
  const hasMore = page.cut || page.read === limit;
  return {
    ...sinceEnvelope(memories, limit, null),
    tombstones,
    archive_events: lanes.archive_events ?? [],
    links: lanes.links ?? [],
    link_removals: lanes.link_removals ?? [],
    entries: page.delivered.map((e) => ({ id: e.memoryId, cursor: encodeCursor(e) })),
    next_cursor: encodeCursor(page.last ?? after),
    has_more: hasMore,
    // How far behind the caller still is after this page (capped): its lag figure.
    remaining: hasMore && page.last ? await countAfter(db, page.last, REMAINING_CAP) : 0,
  };
}

/** At most this many rows extend a since page to finish its last timestamp. */
const SAME_TIME_MAX = 10_000;

/**
 * Upstream's form: live memories with `updated_at` after `since` (exclusive), oldest
 * first. A page never ends inside a run of rows sharing one `updated_at` (the caller
 * re-asks from latest_updated_at, exclusive, as upstream's poller does, so it would never
 * see the rest of the run): a full page is extended to the end of its last timestamp, and
 * the byte budget ends a page before the run it would split, unless that run starts the page.
 */
export async function updatedSincePage(db: Db, since: string | null, limit: number) {
  const page = await memoriesUpdatedSince(db, since, limit);
  const last = page.at(-1);
  if (last && page.length === limit) page.push(...(await memoriesAtUpdatedAfterId(db, last.updated_at, last.id, SAME_TIME_MAX)));
  let end = page.length;
  let bytes = 0;
  for (let i = 0; i < page.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(page[i]));
    if (i === 0 || bytes <= SINCE_PAGE_MAX_BYTES) continue;
    const ts = page[i - 1]!.updated_at;
    if (page[i]!.updated_at !== ts) {
      end = i;
      break;
    }
    let start = i - 1;
    while (start > 0 && page[start - 1]!.updated_at === ts) start--;
    if (start > 0) {
      end = start;
      break;
    }
    // The run starts the page: keep it whole.
  }
  return sinceEnvelope(page.slice(0, end), limit, since);
}
