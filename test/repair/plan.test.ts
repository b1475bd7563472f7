import { describe, expect, it } from 'vitest';
import { compareKeys, differingBuckets, groupLeaves, planRows, splitBuckets } from '../../src/repair/plan.js';
import { repairRequest, repairRequestProblem, MAX_BUCKETS } from '../../src/repair/protocol.js';
import type { BucketDigest, RowKey } from '../../src/store/repair-digests.js';

const d = (entries: Array<[string, number, string]>) => new Map<string, BucketDigest>(entries.map(([p, n, h]) => [p, { n, h }]));
const live = (id: string, time: bigint | number, digest = 'aa'): RowKey => ({ id, time: String(time), tomb: false, digest });
const tomb = (id: string, time: bigint | number): RowKey => ({ id, time: String(time), tomb: true, digest: '' });
const NOW = 1_800_000_000_000_000n;
const HORIZON = NOW - 30n * 86_400_000_000n;

describe('bucket comparison', () => {
  it('identical digests differ nowhere', () => {
    const a = d([['0a1', 3, 'ff00'], ['0a2', 1, '0001']]);
    expect(differingBuckets(a, d([['0a1', 3, 'ff00'], ['0a2', 1, '0001']]))).toEqual([]);
  });

  it('a bucket differs by hash, by count, or by being on one side only', () => {
    const local = d([['000', 3, 'aaaa'], ['001', 2, 'bbbb'], ['002', 1, 'cccc']]);
    const remote = d([['000', 3, 'aaab'], ['001', 3, 'bbbb'], ['003', 1, 'dddd']]);
    expect(differingBuckets(local, remote)).toEqual(['000', '001', '002', '003']);
  });

  it('small buckets are compared row by row, large ones narrowed, full-length ones never narrowed', () => {
    const local = d([['a', 10, 'x'], ['b', 500, 'x']]);
    const remote = d([['a', 70, 'y'], ['c', 3, 'y']]);
    const full = 'f'.repeat(32);
    const s = splitBuckets(['a', 'b', 'c', full], local, new Map([...remote, [full, { n: 1000, h: 'z' }]]), 64);
    expect(s.narrow).toEqual(['a', 'b']);
    expect(s.leaves).toEqual([{ prefix: 'c', rows: 3 }, { prefix: full, rows: 1000 }]);
  });

  it('groups leaves under a row budget and a prefix cap', () => {
    const leaves = [{ prefix: 'a', rows: 40 }, { prefix: 'b', rows: 40 }, { prefix: 'c', rows: 40 }, { prefix: 'd', rows: 1 }];
    expect(groupLeaves(leaves, 100, 10)).toEqual([['a', 'b'], ['c', 'd']]);
    expect(groupLeaves(leaves, 1000, 3)).toEqual([['a', 'b', 'c'], ['d']]);
    // A single leaf larger than the budget still goes (alone).
    expect(groupLeaves([{ prefix: 'x', rows: 500 }], 100, 10)).toEqual([['x']]);
  });
});

describe('LWW order of row keys', () => {
  it('orders by time, then a tombstone over a live row, then the content digest', () => {
    expect(compareKeys(live('m', 2), live('m', 1))).toBe(1);
    expect(compareKeys(tomb('m', 1), live('m', 1))).toBe(1);
    expect(compareKeys(live('m', 1, 'bb'), live('m', 1, 'aa'))).toBe(1);
    expect(compareKeys(live('m', 1, 'aa'), live('m', 1, 'aa'))).toBe(0);
    expect(compareKeys(tomb('m', 5), tomb('m', 5))).toBe(0);
    // Microsecond times beyond 2^53 compare exactly.
    expect(compareKeys(live('m', 9007199254740993n), live('m', 9007199254740992n))).toBe(1);
  });
});

describe('row plan', () => {
  const recent = NOW - 1000n;
  const old = HORIZON - 1000n;

  it('sends each side only what it lacks or holds older', () => {
    const local = [live('a', recent), live('b', recent + 5n), tomb('c', recent), live('d', recent)];
    const remote = [live('a', recent), live('b', recent), live('c', recent - 1n), tomb('d', recent + 1n), live('e', recent)];
    const p = planRows(local, remote, { horizonUs: HORIZON, restored: false });
    expect(p.push.sort()).toEqual(['b', 'c']);
    expect(p.pull.sort()).toEqual(['d', 'e']);
    expect(p.drop).toEqual([]);
  });

  it('never sends a one-sided row older than the grace horizon (either way), but reports it', () => {
    const p = planRows([live('mine', old)], [tomb('theirs', old)], { horizonUs: HORIZON, restored: false });
    expect(p.push).toEqual([]);
    expect(p.pull).toEqual([]);
    expect(p.beyondGrace.local.map((k) => k.id)).toEqual(['mine']);
    expect(p.beyondGrace.remote.map((k) => k.id)).toEqual(['theirs']);
  });

  it('an old row both sides hold is still reconciled by LWW', () => {
    const p = planRows([live('x', old)], [tomb('x', old + 1n)], { horizonUs: HORIZON, restored: false });
    expect(p.pull).toEqual(['x']);
    expect(p.beyondGrace.local).toEqual([]);
  });

  it('after a restore, this node drops its old one-sided rows and takes the peer\'s', () => {
    const p = planRows([live('mine', old), live('fresh', recent)], [live('theirs', old)], { horizonUs: HORIZON, restored: true });
    expect(p.drop.map((k) => k.id)).toEqual(['mine']);
    expect(p.push).toEqual(['fresh']);
    expect(p.pull).toEqual(['theirs']);
  });
});

describe('repair request checks', () => {
  const base = { sender_agent_id: 'a', recipient: 'b' };
  const check = (body: unknown) => {
    const r = repairRequest.safeParse(body);
    return r.success ? repairRequestProblem(r.data) : 'schema';
  };

  it('accepts the documented shapes', () => {
    expect(check({ ...base, op: 'digests', prefixes: [''], depth: 3 })).toBeNull();
    expect(check({ ...base, op: 'keys', prefixes: ['0a', 'ff'] })).toBeNull();
    expect(check({ ...base, op: 'rows', ids: ['m1'] })).toBeNull();
  });

  it('refuses unknown operations, non-hex or uneven prefixes, answers too wide, unknown keys', () => {
    expect(check({ ...base, op: 'dump' })).toBe('schema');
    expect(check({ ...base, op: 'keys', prefixes: ['zz'] })).toBe('schema');
    expect(check({ ...base, op: 'keys', prefixes: ['0a', 'f'] })).toMatch(/one length/);
    expect(check({ ...base, op: 'keys', prefixes: ['0a', '0a'] })).toMatch(/duplicates/);
    expect(check({ ...base, op: 'digests', prefixes: ['0'.repeat(31)], depth: 2 })).toMatch(/exceed 32/);
    const wide = Array.from({ length: MAX_BUCKETS / 16 + 1 }, (_, i) => i.toString(16).padStart(4, '0'));
    expect(check({ ...base, op: 'digests', prefixes: wide, depth: 2 })).toBe('schema');
    expect(check({ ...base, op: 'digests', prefixes: wide.slice(0, 300), depth: 2 })).toMatch(/16\^depth/);
    expect(check({ ...base, op: 'digests', prefixes: [''], depth: 4 })).toBe('schema');
    expect(check({ ...base, op: 'rows', ids: [] })).toBe('schema');
    expect(check({ ...base, op: 'rows', ids: ['m1'], extra: 1 })).toBe('schema');
  });
});
