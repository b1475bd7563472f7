import { describe, expect, it } from 'vitest';
import { itemFromStored, pageOf } from '../../src/federation/feed-page.js';
import { validateMemory } from '../../src/memory/model.js';
import type { FeedEntry } from '../../src/store/feed.js';
import type { StoredMemory } from '../../src/store/memories.js';

const AT = '2026-01-01T00:00:00.000000+00:00';
let seq = 0;
const entry = (memoryId: string, originPeer: string | null = null): FeedEntry => ({ txid: '10', seq: String(++seq), memoryId, op: 'upsert', originPeer, committedAt: AT });
const stored = (id: string, content = 'x', deletedAt: string | null = null): StoredMemory => ({
  memory: validateMemory({ id, title: id, content, tier: 'mid', namespace: 'global', tags: [], priority: 5, confidence: 1, source: 'api', access_count: 0, created_at: AT, updated_at: AT, metadata: {} }),
  deletedAt,
  digest: 'd',
});
const storeOf = (...rows: StoredMemory[]) => new Map(rows.map((r) => [r.memory.id, r]));

describe('a page of the change feed', () => {
  it('sends each changed memory once, as it is now, and reports every entry it stands for', () => {
    const es = [entry('a'), entry('b'), entry('a')];
    const page = pageOf(es, storeOf(stored('a', 'latest'), stored('b')), { maxBytes: 1 << 20 });
    expect(page.items.map((i) => (i.kind === 'memory' ? i.memory.content : null))).toEqual(['latest', 'x']);
    expect(page.delivered).toEqual(es);
    expect(page).toMatchObject({ last: es[2], cut: false, read: 3 });
  });

  it('sends a deleted memory as its tombstone', () => {
    const page = pageOf([entry('gone')], storeOf(stored('gone', 'x', AT)), { maxBytes: 1 << 20 });
    expect(page.items).toEqual([{ kind: 'tombstone', tombstone: { id: 'gone', deleted_at: AT }, bytes: expect.any(Number) }]);
  });

  it('never echoes a change to the peer it came from, but moves past it', () => {
    const es = [entry('mine'), entry('theirs', 'peer-b'), entry('other', 'peer-c')];
    const page = pageOf(es, storeOf(stored('mine'), stored('theirs'), stored('other')), { excludeOrigin: 'peer-b', maxBytes: 1 << 20 });
    expect(page.items.map((i) => (i.kind === 'memory' ? i.memory.id : ''))).toEqual(['mine', 'other']);
    expect(page.delivered.map((e) => e.memoryId)).toEqual(['mine', 'other']);
    expect(page.last).toBe(es[2]);
  });

  it('without relay holds only local writes, yet moves past the rows applied from peers', () => {
    const es = [entry('theirs', 'peer-b'), entry('mine'), entry('other', 'peer-c')];
    const page = pageOf(es, storeOf(stored('mine'), stored('theirs'), stored('other')), { excludeOrigin: 'peer-d', localOnly: true, maxBytes: 1 << 20 });
    expect(page.items.map((i) => (i.kind === 'memory' ? i.memory.id : ''))).toEqual(['mine']);
    expect(page.delivered.map((e) => e.memoryId)).toEqual(['mine']);
    expect(page.last).toBe(es[2]);
  });

  it('skips entries whose memory is not stored, without ending the page there', () => {
    const es = [entry('missing'), entry('here')];
    const page = pageOf(es, storeOf(stored('here')), { maxBytes: 1 << 20 });
    expect(page.delivered.map((e) => e.memoryId)).toEqual(['here']);
    expect(page.last).toBe(es[1]);
  });

  it('cuts before the byte budget would be exceeded, at an entry boundary, and says so', () => {
    const rows = ['r1', 'r2', 'r3'].map((id) => stored(id, 'y'.repeat(1000)));
    const one = itemFromStored(rows[0]!).bytes;
    const es = rows.map((r) => entry(r.memory.id));
    const page = pageOf(es, storeOf(...rows), { maxBytes: 2 * one });
    expect(page.items).toHaveLength(2);
    expect(page.cut).toBe(true);
    expect(page.last).toBe(es[1]);
    // exactly at the budget still fits
    expect(pageOf(es, storeOf(...rows), { maxBytes: 3 * one }).cut).toBe(false);
  });

  it('always holds at least one row, however small the budget', () => {
    const es = [entry('big'), entry('next')];
    const page = pageOf(es, storeOf(stored('big', 'z'.repeat(5000)), stored('next')), { maxBytes: 10 });
    expect(page.items).toHaveLength(1);
    expect(page).toMatchObject({ cut: true, last: es[0] });
  });

  it('is empty with nothing read', () => {
    expect(pageOf([], new Map(), { maxBytes: 100 })).toEqual({ items: [], delivered: [], last: undefined, cut: false, read: 0 });
  });
});
