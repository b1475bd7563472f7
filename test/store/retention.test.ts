import { describe, expect, it } from 'vitest';
import { behindHorizon, prunable, prunablePrefix, type PruneRules } from '../../src/store/retention.js';
import { decodeSnapshotToken, encodeSnapshotToken } from '../../src/federation/snapshot.js';

const NOW = 1_000_000_000;
const rules = (over: Partial<PruneRules> = {}): PruneRules => ({ nowMs: NOW, retentionMs: 1000, maxLagMs: 4000, cursors: [], snapshots: [], ...over });
const at = (seq: number, ageMs: number, txid = 100) => ({ txid: String(txid), seq: String(seq), committedAtMs: NOW - ageMs });
const pos = (seq: number, txid = 100) => ({ txid: String(txid), seq: String(seq) });

describe('retention rules', () => {
  it('an entry inside the retention window is kept whatever the cursors', () => {
    expect(prunable(at(1, 1000), rules())).toBe(false);
    expect(prunable(at(1, 1001), rules())).toBe(true);
  });

  it('an entry older than the window is kept until every peer cursor has passed it', () => {
    const r = rules({ cursors: [pos(5), pos(2)] });
    expect(prunable(at(2, 2000), r)).toBe(true);
    expect(prunable(at(3, 2000), r)).toBe(false);
  });

  it('beyond the lag bound a lagging cursor no longer holds the entry', () => {
    const r = rules({ cursors: [pos(0, 0)] });
    expect(prunable(at(3, 4000), r)).toBe(false);
    expect(prunable(at(3, 4001), r)).toBe(true);
  });

  it('a live snapshot keeps every entry after its position, even beyond the lag bound', () => {
    const r = rules({ snapshots: [pos(4)] });
    expect(prunable(at(4, 9000), r)).toBe(true);
    expect(prunable(at(5, 9000), r)).toBe(false);
  });

  it('positions compare as (txid, seq) pairs, txid first', () => {
    const r = rules({ cursors: [pos(1, 101)] });
    expect(prunable(at(50, 2000, 100), r)).toBe(true);
    expect(prunable(at(0, 2000, 102), r)).toBe(false);
  });

  it('pruning takes a prefix only: it stops at the first entry that must stay, even if later ones could go', () => {
    const r = rules({ cursors: [pos(10)] });
    // seq 3 is young (a long transaction's entry): 4 and 5 stay behind it.
    const kept = prunablePrefix([at(1, 5000), at(2, 5000), at(3, 10), at(4, 5000), at(5, 5000)], r);
    expect(kept.map((e) => e.seq)).toEqual(['1', '2']);
  });

  it('a reader at the horizon missed nothing; one before it did', () => {
    expect(behindHorizon(pos(4), pos(4))).toBe(false);
    expect(behindHorizon(pos(3), pos(4))).toBe(true);
    expect(behindHorizon(pos(0, 0), pos(0, 0))).toBe(false);
  });
});

describe('snapshot page tokens', () => {
  const id = '0b7c6f1e-9d5a-4c1b-8e7f-2a3b4c5d6e7f';
  it('round-trip the snapshot id and the last id served', () => {
    for (const last of ['a', 'ümlaut-id', 'x'.repeat(128), 'id with spaces']) expect(decodeSnapshotToken(encodeSnapshotToken(id, last))).toEqual({ snapshotId: id, lastId: last });
  });

  it('refuse anything else: wrong version, bad uuid, non-canonical or empty base64, NUL, oversize', () => {
    const good = encodeSnapshotToken(id, 'abc');
    for (const bad of ['', 'garbage', good.replace('s1.', 's2.'), `s1.not-a-uuid-not-a-uuid-not-a-uuid-xx.YWJj`, `s1.${id}.`, `s1.${id}.YWJj=`, `s1.${id}.YWJ`, `s1.${id}.${Buffer.from('a\u0000b').toString('base64url')}`, `s1.${id}.${'A'.repeat(2000)}`, `${good}.extra`]) {
      expect(decodeSnapshotToken(bad), bad).toBeNull();
    }
  });
});
