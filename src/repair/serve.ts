import type { Db } from '../db/client.js';
import { itemFromStored, type Item } from '../federation/feed-page.js';
import { pushBodyOf } from '../federation/wire.js';
import { nowMicros, parseTimestamp } from '../memory/time.js';
import { bucketDigests, rowKeys } from '../store/repair-digests.js';
import { loadStored } from '../store/replica.js';
import { MAX_KEYS, ROWS_MAX_BYTES, type DigestsAnswer, type KeysAnswer, type RepairRequest } from './protocol.js';

/** A `keys` request whose buckets hold more rows than one answer lists (the caller asks narrower). */
export class RangeTooLarge extends Error {}

/** The serving side of a repair request (already authenticated and checked). */
export async function answerRepair(db: Db, nodeId: string, caller: string, req: RepairRequest): Promise<DigestsAnswer | KeysAnswer | ReturnType<typeof rowsAnswer>> {
  switch (req.op) {
    case 'digests': {
      const d = await bucketDigests(db, req.prefixes, req.depth);
      return { buckets: [...d].map(([p, b]) => [p, b.n, b.h]) };
    }
    case 'keys': {
      const keys = await rowKeys(db, req.prefixes, MAX_KEYS + 1);
      if (keys.length > MAX_KEYS) throw new RangeTooLarge(`the buckets hold more than ${MAX_KEYS} rows; ask for narrower ones`);
      return { keys: keys.map((k) => [k.id, k.time, k.tomb ? 1 : 0, k.digest]) };
    }
    case 'rows':
      return rowsAnswer(nodeId, caller, await repairItems(db, req.ids));
  }
}

/** The current state of `ids` as repair sends it: live memories not expired, tombstones; absent ids left out. */
export async function repairItems(db: Db, ids: string[]): Promise<Item[]> {
  const stored = await loadStored(db, ids);
  const now = nowMicros();
  const items: Item[] = [];
  for (const id of ids) {
    const s = stored.get(id);
    if (!s) continue;
    // Expired rows are absent for repair (never served, never resurrected).
    if (s.deletedAt === null && s.memory.expires_at && (parseTimestamp(s.memory.expires_at) ?? Infinity) <= now) continue;
    items.push(itemFromStored(s));
  }
  return items;
}

/** Rows in the push body's lanes, cut at the byte budget; `more`: ids left for another request. */
function rowsAnswer(nodeId: string, caller: string, items: Item[]) {
  let bytes = 0;
  let end = 0;
  for (; end < items.length; end++) {
    if (end > 0 && bytes + items[end]!.bytes > ROWS_MAX_BYTES) break;
    bytes += items[end]!.bytes;
  }
  const more = items.slice(end).map((i) => (i.kind === 'memory' ? i.memory.id : i.tombstone.id));
  return { ...pushBodyOf(nodeId, caller, items.slice(0, end)), more };
}
