import type { Db } from '../db/client.js';
import { checkNamespace, checkUpdate, type Policy } from '../governance.js';
import type { Memory } from '../memory/model.js';
import { loadStored, type Tombstone } from '../store/replica.js';
import { nowMicros, parseTimestamp } from '../memory/time.js';

export interface AdmissionRefusal {
  id: string;
  code: string;
  rule: string;
  reason: string;
  lane: 'memories' | 'tombstones';
}

/**
 * Whether a timestamp lies beyond now + the allowed skew. A version stamped in the future
 * would win every LWW comparison until then (and past year 2255 microsecond arithmetic
 * loses precision): rows and events beyond it are refused.
 */
export function beyondSkew(clockSkewMs: number): (ts: string) => boolean {
  const horizon = nowMicros() + clockSkewMs * 1000;
  return (ts) => (parseTimestamp(ts) ?? 0) > horizon;
}

/**
 * Admission of rows from a peer (push or pull): no timestamps from the future, then
 * governance: a memory is judged by its own content and, when it replaces a memory
 * stored here in another namespace, by that stored namespace too (a peer cannot move a
 * memory out of a namespace it may not write by re-pushing it under one it may);
 * a deletion by the namespace of the memory it would delete, so a peer cannot remove
 * what it may not write. Unknown ids carry nothing to protect and pass.
 */
export async function admitReplicated(
  db: Db,
  policy: Policy | null,
  peerId: string,
  rows: { memories: Memory[]; tombstones: Tombstone[] },
  clockSkewMs: number,
): Promise<{ memories: Memory[]; tombstones: Tombstone[]; refused: AdmissionRefusal[] }> {
  const refused: AdmissionRefusal[] = [];
  const future = beyondSkew(clockSkewMs);
  const timely = {
    memories: rows.memories.filter((m) => {
      if (!future(m.updated_at)) return true;
      refused.push({ id: m.id, lane: 'memories', code: 'FUTURE_TIMESTAMP', rule: 'clock_skew', reason: `updated_at ${m.updated_at} is in the future` });
      return false;
    }),
    tombstones: rows.tombstones.filter((t) => {
      if (!future(t.deleted_at)) return true;
      refused.push({ id: t.id, lane: 'tombstones', code: 'FUTURE_TIMESTAMP', rule: 'clock_skew', reason: `deleted_at ${t.deleted_at} is in the future` });
      return false;
    }),
  };
  if (!policy) return { ...timely, refused };
  // What is stored under each id (live or deleted): both lanes are judged against it.
  const stored = await loadStored(db, [...new Set([...timely.memories.map((m) => m.id), ...timely.tombstones.map((t) => t.id)])]);
  const memories = timely.memories.filter((m) => {
    const r = checkUpdate(policy, stored.get(m.id)?.memory, m, peerId);
    if (r) refused.push({ id: m.id, lane: 'memories', ...r });
    return !r;
  });
  const tombstones = timely.tombstones.filter((t) => {
    const s = stored.get(t.id);
    const r = s && s.memory.namespace ? checkNamespace(policy, s.memory.namespace, peerId) : null;
    if (r) refused.push({ id: t.id, lane: 'tombstones', ...r });
    return !r;
  });
  return { memories, tombstones, refused };
}
