import type { BucketDigest, RowKey } from '../store/repair-digests.js';
import { HASH_HEX_LEN } from '../store/repair-digests.js';

/*
 * The pure part of anti-entropy repair: which buckets differ, which of those to narrow
 * further and which to compare row by row, and what each side must send (src/repair/run.ts
 * does the requests).
 */

/** Buckets whose count or hash differ between the sides (a bucket missing on one side is empty there). */
export function differingBuckets(local: Map<string, BucketDigest>, remote: Map<string, BucketDigest>): string[] {
  const out: string[] = [];
  for (const [p, l] of local) {
    const r = remote.get(p);
    if (!r || r.n !== l.n || r.h !== l.h) out.push(p);
  }
  for (const p of remote.keys()) if (!local.has(p)) out.push(p);
  return out.sort();
}

/**
 * Splits differing buckets: one with at most `leafRows` rows on either side (or at the full
 * hash length) is compared row by row; a larger one is narrowed one level further.
 */
export function splitBuckets(prefixes: string[], local: Map<string, BucketDigest>, remote: Map<string, BucketDigest>, leafRows: number): { narrow: string[]; leaves: Array<{ prefix: string; rows: number }> } {
  const narrow: string[] = [];
  const leaves: Array<{ prefix: string; rows: number }> = [];
  for (const p of prefixes) {
    const rows = Math.max(local.get(p)?.n ?? 0, remote.get(p)?.n ?? 0);
    if (rows <= leafRows || p.length >= HASH_HEX_LEN) leaves.push({ prefix: p, rows });
    else narrow.push(p);
  }
  return { narrow, leaves };
}

/** Groups leaf buckets into requests of at most `maxRows` expected rows and `maxPrefixes` prefixes. */
export function groupLeaves(leaves: Array<{ prefix: string; rows: number }>, maxRows: number, maxPrefixes: number): string[][] {
  const groups: string[][] = [];
  let cur: string[] = [];
  let rows = 0;
  for (const l of leaves) {
    if (cur.length > 0 && (rows + l.rows > maxRows || cur.length >= maxPrefixes)) {
      groups.push(cur);
      cur = [];
      rows = 0;
    }
    cur.push(l.prefix);
    rows += l.rows;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/** LWW order of two keys of one id, as src/store/replica.ts orders stored versions. */
export function compareKeys(a: RowKey, b: RowKey): number {
  const ta = BigInt(a.time);
  const tb = BigInt(b.time);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a.tomb !== b.tomb) return a.tomb ? 1 : -1;
  // Two tombstones of one time are the same deletion.
  if (a.tomb) return 0;
  return a.digest === b.digest ? 0 : a.digest < b.digest ? -1 : 1;
}

export const sameKey = (a: RowKey, b: RowKey) => compareKeys(a, b) === 0;

export interface RowPlan {
  /** Ids whose remote version wins (or only the remote holds): fetched and applied here. */
  pull: string[];
  /** Ids whose local version wins (or only this node holds): sent to the peer. */
  push: string[];
  /** One-sided rows older than the grace horizon, not sent (a delete's tombstone may be gone). */
  beyondGrace: { local: RowKey[]; remote: RowKey[] };
  /** After a restore: one-sided local rows older than the grace horizon, dropped here. */
  drop: RowKey[];
}

/**
 * What to exchange for rows of the same buckets. `horizonUs`: now minus TOMBSTONE_GRACE in
 * microseconds. A row only one side holds whose LWW time is older than the horizon may be
 * the copy of a memory deleted so long ago that the other side collected its tombstone: it
 * is reported, not sent. After a restore (`restored`), this node trusts its peers for such
 * rows: its own are dropped and the peer's are taken.
 */
export function planRows(local: RowKey[], remote: RowKey[], opts: { horizonUs: bigint; restored: boolean }): RowPlan {
  const plan: RowPlan = { pull: [], push: [], beyondGrace: { local: [], remote: [] }, drop: [] };
  const theirs = new Map(remote.map((k) => [k.id, k]));
  const old = (k: RowKey) => BigInt(k.time) < opts.horizonUs;
  for (const l of local) {
    const r = theirs.get(l.id);
    theirs.delete(l.id);
    if (r) {
      const c = compareKeys(l, r);
      if (c > 0) plan.push.push(l.id);
      else if (c < 0) plan.pull.push(l.id);
      continue;
    }
    if (!old(l)) plan.push.push(l.id);
    else if (opts.restored) plan.drop.push(l);
    else plan.beyondGrace.local.push(l);
  }
  for (const r of theirs.values()) {
    if (!old(r) || opts.restored) plan.pull.push(r.id);
    else plan.beyondGrace.remote.push(r);
  }
  return plan;
}
