import { describe, expect, it } from 'vitest';
import type { PeerConfig } from '../../src/config.js';
import { PeerRequestError, type PeerClient } from '../../src/federation/client.js';
import { itemFromStored, itemId, type Item } from '../../src/federation/feed-page.js';
import { refusalToDeadLetter, sendBatch, sendIsolating, verdictOf, type PusherDeps } from '../../src/federation/pusher.js';
import { buildPushBody, pushBodyOf, type PushResponse } from '../../src/federation/wire.js';
import type { Memory } from '../../src/memory/model.js';

const PEER: PeerConfig = { id: 'peer-b', url: 'http://peer-b.invalid' };

function memory(id: string, over: Partial<Memory> = {}): Memory {
  return {
    id,
    tier: 'mid',
    namespace: 'global',
    title: 't',
    content: 'c',
    tags: [],
    priority: 5,
    confidence: 0.5,
    source: 'api',
    access_count: 0,
    created_at: '2024-01-01T00:00:00Z',
    updated_at: '2024-01-01T00:00:00Z',
    metadata: {},
    version: 1,
    ...over,
  };
}

const live = (id: string): Item => itemFromStored({ memory: memory(id), deletedAt: null, digest: 'd' });
const dead = (id: string): Item => itemFromStored({ memory: memory(id), deletedAt: '2024-02-01T00:00:00Z', digest: 'd' });

interface SentBody {
  sender_agent_id: string;
  recipient: string;
  memories: Memory[];
  deletions: string[];
  tombstones: { id: string; deleted_at: string }[];
}

/**
 * A peer double: `answer` sees the ids of each push (memories then tombstones) and
 * returns the response or throws. Records every push and every outcome counted.
 */
function fakePeer(answer: (ids: string[]) => PushResponse) {
  const sent: SentBody[] = [];
  const outcomes: string[] = [];
  const client = {
    push: (peer: PeerConfig, body: unknown) => {
      expect(peer).toBe(PEER);
      const b = body as SentBody;
      sent.push(b);
      try {
        return Promise.resolve(answer([...b.memories.map((m) => m.id), ...b.tombstones.map((t) => t.id)]));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    },
  } as unknown as PeerClient;
  const metrics = {
    pushOutcomes: {
      inc: (labels: { peer: string; class: string }) => {
        expect(labels.peer).toBe(PEER.id);
        outcomes.push(labels.class);
      },
    },
  } as unknown as PusherDeps['metrics'];
  return { deps: { client, selfId: 'node-a', metrics }, sent, outcomes, batches: () => sent.map((b) => [...b.memories.map((m) => m.id), ...b.tombstones.map((t) => t.id)]) };
}

const permanent = () => new PeerRequestError('permanent', 'HTTP 422 poison', 422);

describe('items to push', () => {
  it('sizes a row by what it adds to a push body: a memory once with its comma, a tombstone in deletions and tombstones', () => {
    const m = memory('m1', { content: 'é'.repeat(10) });
    const item = itemFromStored({ memory: m, deletedAt: null, digest: 'd' });
    expect(item).toEqual({ kind: 'memory', memory: m, bytes: Buffer.byteLength(JSON.stringify(m)) + 1 });
    expect(item.bytes).toBeGreaterThan(JSON.stringify(m).length + 1);
    const t = { id: 'm2', deleted_at: '2024-02-01T00:00:00Z' };
    expect(dead('m2')).toEqual({ kind: 'tombstone', tombstone: t, bytes: JSON.stringify('m2').length + JSON.stringify(t).length + 2 });
    expect(itemId(live('m1'))).toBe('m1');
    expect(itemId(dead('m2'))).toBe('m2');
  });

  it('a memory with an archive register and links: its item carries them, sized to cover what they add to the body', () => {
    const link = (relation: 'related_to' | 'supersedes', removed_at: string | null) => ({ source_id: 'm1', target_id: 'm9', relation, created_at: '2024-03-01T00:00:00.000000+00:00', removed_at, attest_level: 'unsigned' });
    const links = [link('related_to', null), link('supersedes', '2024-03-02T00:00:00.000000+00:00')];
    const archive = { archivedAt: '2024-04-01T00:00:00.000000+00:00', changedAt: '2024-04-01T00:00:00.000000+00:00', reason: 'stale' };
    const item = itemFromStored({ memory: memory('m1'), deletedAt: null, digest: 'd', archive, links });
    expect(item).toMatchObject({ kind: 'memory', archive: { id: 'm1', archived: true, at: archive.archivedAt, reason: 'stale' }, links });
    // A tombstone carries neither.
    expect(itemFromStored({ memory: memory('m2'), deletedAt: '2024-05-01T00:00:00Z', digest: 'd', archive, links })).not.toHaveProperty('links');
    const items = [item, live('m2'), dead('m3')];
    const body = pushBodyOf('node-a', 'peer-b', items);
    expect(body).toMatchObject({ archives: ['m1'], restores: [], links: [{ source_id: 'm1', relation: 'related_to' }], link_removals: [{ source_id: 'm1', relation: 'supersedes' }] });
    const empty = Buffer.byteLength(JSON.stringify(buildPushBody({ sender: 'node-a', recipient: 'peer-b', memories: [], tombstones: [] })));
    const lanes = Buffer.byteLength(',"archives":[],"restores":[],"archive_events":[],"links":[],"link_removals":[]');
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThanOrEqual(empty + lanes + items.reduce((a, i) => a + i.bytes, 0));
  });

  it('a refused row becomes a dead letter: upsert with the memory, delete with the tombstone', () => {
    const m = live('m1');
    expect(refusalToDeadLetter('peer-b', { item: m, failureClass: 'skipped', error: 'why' })).toEqual({
      peerId: 'peer-b',
      memoryId: 'm1',
      op: 'upsert',
      payload: (m as Extract<Item, { kind: 'memory' }>).memory,
      failureClass: 'skipped',
      error: 'why',
    });
    expect(refusalToDeadLetter('peer-b', { item: dead('m2'), failureClass: 'permanent', error: 'e' })).toEqual({
      peerId: 'peer-b',
      memoryId: 'm2',
      op: 'delete',
      payload: { id: 'm2', deleted_at: '2024-02-01T00:00:00Z' },
      failureClass: 'permanent',
      error: 'e',
    });
  });
});

describe('sendIsolating', () => {
  it('sends memories and tombstones in one signed body addressed to the peer', async () => {
    const p = fakePeer((ids) => ({ results: ids.map((id) => ({ id, status: 'applied' as const })) }));
    expect(await sendIsolating(p.deps, PEER, [live('m1'), dead('m2'), live('m3')])).toEqual([]);
    expect(p.sent).toHaveLength(1);
    expect(p.sent[0]).toEqual({
      sender_agent_id: 'node-a',
      recipient: 'peer-b',
      memories: [memory('m1'), memory('m3')],
      deletions: ['m2'],
      tombstones: [{ id: 'm2', deleted_at: '2024-02-01T00:00:00Z' }],
    });
    expect(p.outcomes).toEqual(['ok']);
  });

  it('dead-letters rows the peer skipped, with its reason or a default', async () => {
    const p = fakePeer(() => ({
      results: [
        { id: 'm1', status: 'applied' },
        { id: 'm2', status: 'skipped', reason: 'GOVERNANCE_NAMESPACE_DENIED' },
        { id: 'm3', status: 'skipped' },
        { id: 'm4', status: 'noop' },
      ],
    }));
    const out = await sendIsolating(p.deps, PEER, [live('m1'), live('m2'), dead('m3'), live('m4')]);
    expect(out.map((r) => [itemId(r.item), r.failureClass, r.error])).toEqual([
      ['m2', 'skipped', 'GOVERNANCE_NAMESPACE_DENIED'],
      ['m3', 'skipped', 'skipped by peer'],
    ]);
  });

  it('a row the per-row results do not mention is id drift; malformed result entries count as missing', async () => {
    const p = fakePeer(() => ({ results: [null, { id: 7 }, { id: 'm1', status: 'applied' }] as unknown as PushResponse['results'] }));
    const out = await sendIsolating(p.deps, PEER, [live('m1'), live('m2')]);
    expect(out).toEqual([{ item: live('m2'), failureClass: 'id_drift', error: 'peer reported no result for this id' }]);
  });

  it('a batch refused as a whole is halved until the poison row stands alone', async () => {
    const p = fakePeer((ids) => {
      if (ids.includes('m3')) throw permanent();
      return { results: ids.map((id) => ({ id, status: 'applied' as const })) };
    });
    const items = ['m1', 'm2', 'm3', 'm4', 'm5'].map(live);
    const out = await sendIsolating(p.deps, PEER, items);
    expect(out).toEqual([{ item: items[2], failureClass: 'permanent', error: '[permanent] HTTP 422 poison' }]);
    // The larger half goes first: 5 -> 3 + 2, 3 -> 2 + 1, 2 -> 1 + 1.
    expect(p.batches()).toEqual([['m1', 'm2', 'm3', 'm4', 'm5'], ['m1', 'm2', 'm3'], ['m1', 'm2'], ['m3'], ['m4', 'm5']]);
    expect(p.outcomes).toEqual(['permanent', 'permanent', 'ok', 'permanent', 'ok']);
  });

  it('isolates several poison rows, tombstones included, in row order', async () => {
    const p = fakePeer((ids) => {
      if (ids.includes('m1') || ids.includes('m4')) throw permanent();
      return {};
    });
    const items = [live('m1'), live('m2'), live('m3'), dead('m4')];
    const out = await sendIsolating(p.deps, PEER, items);
    expect(out.map((r) => [itemId(r.item), r.failureClass])).toEqual([
      ['m1', 'permanent'],
      ['m4', 'permanent'],
    ]);
  });

  it('a single refused row is dead-lettered without a retry', async () => {
    const p = fakePeer(() => {
      throw permanent();
    });
    expect(await sendIsolating(p.deps, PEER, [dead('m1')])).toEqual([{ item: dead('m1'), failureClass: 'permanent', error: '[permanent] HTTP 422 poison' }]);
    expect(p.sent).toHaveLength(1);
  });

  it('transient, throttle and unenrolled failures propagate and dead-letter nothing', async () => {
    for (const cls of ['transient', 'throttle', 'unenrolled'] as const) {
      const p = fakePeer(() => {
        throw new PeerRequestError(cls, 'x');
      });
      await expect(sendIsolating(p.deps, PEER, [live('m1'), live('m2')])).rejects.toMatchObject({ failureClass: cls });
      expect(p.sent).toHaveLength(1);
      expect(p.outcomes).toEqual([cls]);
    }
  });

  it('an error that is not a peer request error propagates uncounted', async () => {
    const p = fakePeer(() => {
      throw new TypeError('bug');
    });
    await expect(sendIsolating(p.deps, PEER, [live('m1'), live('m2')])).rejects.toThrow(TypeError);
    expect(p.outcomes).toEqual([]);
  });

  it('an upstream peer reporting only a skipped count is split until the skipped row is found', async () => {
    const p = fakePeer((ids) => ({ applied: ids.filter((id) => id !== 'm2').length, skipped: ids.includes('m2') ? 1 : 0 }));
    const items = [live('m1'), live('m2'), live('m3')];
    expect(await sendIsolating(p.deps, PEER, items)).toEqual([{ item: items[1], failureClass: 'skipped', error: 'peer reported skipped' }]);
    expect(p.batches()).toEqual([['m1', 'm2', 'm3'], ['m1', 'm2'], ['m1'], ['m2'], ['m3']]);
  });

  it('a skipped result for an id is a non-ack even when another result for it says applied', async () => {
    const p = fakePeer((ids) => ({ results: [{ id: 'm1', status: 'skipped', reason: 'FUTURE_TIMESTAMP: link' }, ...ids.map((id) => ({ id, status: 'applied' as const }))] }));
    const items = [live('m1'), live('m2')];
    expect(await sendIsolating(p.deps, PEER, items)).toEqual([{ item: items[0], failureClass: 'skipped', error: 'FUTURE_TIMESTAMP: link' }]);
  });

  it('an upstream postgres peer answering unsupported_on_postgres for an archive is no ack: the archived row is dead-lettered', async () => {
    const archivedItem = itemFromStored({ memory: memory('m2'), deletedAt: null, digest: 'd', archive: { archivedAt: '2024-03-01T00:00:00.000000+00:00', changedAt: '2024-03-01T00:00:00.000000+00:00' } });
    const p = fakePeer(() => ({ applied: 0, skipped: 0 }));
    // The peer counts each element of `archives` it cannot apply.
    p.deps.client.push = ((_peer: PeerConfig, body: unknown) => {
      const b = body as SentBody & { archives?: string[] };
      p.sent.push(b);
      return Promise.resolve({ applied: b.memories.length, skipped: 0, unsupported_on_postgres: (b.archives ?? []).length });
    }) as PeerClient['push'];
    const items = [live('m1'), archivedItem, live('m3')];
    expect(await sendIsolating(p.deps, PEER, items)).toEqual([{ item: archivedItem, failureClass: 'skipped', error: 'peer reported unsupported_on_postgres' }]);
    expect((p.sent[0] as unknown as { archives: string[] }).archives).toEqual(['m2']);
  });

  it('an upstream response with no skipped rows dead-letters nothing and sends once', async () => {
    // A skipped count that is not a number is not a count.
    for (const res of [{ applied: 2, skipped: 0 }, { applied: 2 }, {}, { skipped: '1' } as unknown as PushResponse]) {
      const p = fakePeer(() => res);
      expect(await sendIsolating(p.deps, PEER, [live('m1'), live('m2')])).toEqual([]);
      expect(p.sent).toHaveLength(1);
    }
  });
});

describe('sendBatch with the refusal breaker open (split: false)', () => {
  const WHOLE = ' (refusal breaker open: the batch of 3 rows was dead-lettered whole, not split)';

  it('a batch refused as a whole is sent once and every row dead-lettered with the peer reason', async () => {
    const p = fakePeer(() => {
      throw permanent();
    });
    const items = [live('m1'), live('m2'), dead('m3')];
    const out = await sendBatch(p.deps, PEER, items, { split: false });
    expect(out).toEqual({ refused: items.map((item) => ({ item, failureClass: 'permanent', error: `[permanent] HTTP 422 poison${WHOLE}` })), wholeRefusal: '[permanent] HTTP 422 poison' });
    expect(p.sent).toHaveLength(1);
    expect(verdictOf(items, out)).toBe('refused_whole');
  });

  it('an upstream count of every row skipped is dead-lettered whole; fewer skipped than sent still splits (only splitting tells which were taken)', async () => {
    const items = [live('m1'), live('m2'), live('m3')];
    const all = fakePeer((ids) => ({ applied: 0, skipped: ids.length }));
    expect((await sendBatch(all.deps, PEER, items, { split: false })).refused.map((r) => r.error)).toEqual(Array(3).fill(`peer reported skipped (3 of 3)${WHOLE}`));
    expect(all.sent).toHaveLength(1);
    const some = fakePeer((ids) => ({ applied: ids.filter((id) => id !== 'm2').length, skipped: ids.includes('m2') ? 1 : 0 }));
    const out = await sendBatch(some.deps, PEER, items, { split: false });
    expect(out.refused).toEqual([{ item: items[1], failureClass: 'skipped', error: 'peer reported skipped' }]);
    expect(verdictOf(items, out)).toBe('accepted');
  });

  it('transient failures still throw: nothing is dead-lettered, the cursor waits', async () => {
    const p = fakePeer(() => {
      throw new PeerRequestError('transient', 'down');
    });
    await expect(sendBatch(p.deps, PEER, [live('m1'), live('m2')], { split: false })).rejects.toMatchObject({ failureClass: 'transient' });
  });
});

describe('what a batch tells the refusal breaker', () => {
  const items = [live('m1'), live('m2')];
  const refusal = (item: Item) => ({ item, failureClass: 'permanent' as const, error: 'e' });

  it('any row taken is accepted; every row refused after a whole refusal counts; per-row refusals and single rows are neutral', () => {
    expect(verdictOf(items, { refused: [refusal(items[0]!)], wholeRefusal: 'e' })).toBe('accepted');
    expect(verdictOf(items, { refused: [], wholeRefusal: null })).toBe('accepted');
    expect(verdictOf(items, { refused: items.map(refusal), wholeRefusal: 'e' })).toBe('refused_whole');
    // Every row skipped in the peer's results cost one request: nothing to save by opening.
    expect(verdictOf(items, { refused: items.map(refusal), wholeRefusal: null })).toBe('neutral');
    expect(verdictOf([items[0]!], { refused: [refusal(items[0]!)], wholeRefusal: 'e' })).toBe('neutral');
  });
});
