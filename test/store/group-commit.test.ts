import { describe, expect, it } from 'vitest';
import type { Memory } from '../../src/memory/model.js';
import type { FeedPosition } from '../../src/store/feed.js';
import { GroupCommit, type InsertBatch } from '../../src/store/group-commit.js';

const mem = (id: string) => ({ id }) as unknown as Memory;

/** An in-memory store with insertMemories' contract; `gate` holds each call until released. */
function fakeStore(opts: { refuse?: (ids: string[]) => Error | null } = {}) {
  const ids = new Set<string>();
  const calls: string[][] = [];
  const gates: Array<() => void> = [];
  let seq = 0;
  let held = false;
  const insert: InsertBatch = async (docs) => {
    calls.push(docs.map((d) => d.id));
    if (held) await new Promise<void>((r) => gates.push(r));
    const err = opts.refuse?.(docs.map((d) => d.id));
    if (err) throw err;
    const positions = new Map<string, FeedPosition>();
    for (const d of docs) {
      if (ids.has(d.id)) continue;
      ids.add(d.id);
      positions.set(d.id, { txid: String(calls.length), seq: String(++seq) });
    }
    return { positions };
  };
  return {
    insert,
    calls,
    ids,
    hold: () => void (held = true),
    release: () => {
      held = false;
      for (const g of gates.splice(0)) g();
    },
  };
}

const pgError = (code: string) => Object.assign(new Error(`refused (${code})`), { code });
const tick = () => new Promise((r) => setImmediate(r));

describe('group commit of single creates', () => {
  it('commits a lone create at once, in a batch of one', async () => {
    const store = fakeStore();
    const sizes: number[] = [];
    const gc = new GroupCommit(store.insert, { maxBatch: 10, maxInFlight: 1, onBatch: (n) => sizes.push(n) });
    expect(await gc.create(mem('a'))).toEqual({ created: true, position: { txid: '1', seq: '1' } });
    expect(sizes).toEqual([1]);
  });

  it('gathers creates that arrive while a batch commits into the next one, up to maxBatch', async () => {
    const store = fakeStore();
    const gc = new GroupCommit(store.insert, { maxBatch: 3, maxInFlight: 1 });
    store.hold();
    const all = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => gc.create(mem(id)));
    await tick();
    store.release();
    const out = await Promise.all(all);
    expect(store.calls).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
    expect(out.every((o) => o.created)).toBe(true);
    // every caller gets its own row's position, not the batch's last
    expect(new Set(out.map((o) => (o.created ? o.position.seq : ''))).size).toBe(6);
  });

  it('answers nobody before the batch holding its row has committed', async () => {
    const store = fakeStore();
    const gc = new GroupCommit(store.insert, { maxBatch: 10, maxInFlight: 1 });
    store.hold();
    let answered = false;
    const p = gc.create(mem('a')).then((o) => ((answered = true), o));
    await tick();
    expect(answered).toBe(false);
    store.release();
    await p;
    expect(answered).toBe(true);
  });

  it('never puts two creates of one id in a batch: the second is a conflict because the first committed', async () => {
    const store = fakeStore();
    const gc = new GroupCommit(store.insert, { maxBatch: 10, maxInFlight: 1 });
    store.hold();
    const first = gc.create(mem('x'));
    const pair = [gc.create(mem('dup')), gc.create(mem('dup')), gc.create(mem('y'))];
    await tick();
    store.release();
    await first;
    const [a, b, y] = await Promise.all(pair);
    expect(a!.created).toBe(true);
    expect(b).toEqual({ created: false });
    expect(y!.created).toBe(true);
    expect(store.calls.every((c) => new Set(c).size === c.length)).toBe(true);
  });

  it('a second create of an id wins when the first failed', async () => {
    const store = fakeStore();
    let n = 0;
    const gc = new GroupCommit(async (docs) => {
      // The first attempt at 'same' fails on the server; the repeat goes through.
      if (docs.some((d) => d.id === 'same') && n++ === 0) throw pgError('23514');
      return store.insert(docs);
    }, { maxBatch: 10, maxInFlight: 1 });
    const [a, b] = await Promise.allSettled([gc.create(mem('same')), gc.create(mem('same'))]);
    expect(a.status).toBe('rejected');
    expect(b).toEqual({ status: 'fulfilled', value: { created: true, position: expect.any(Object) } });
  });

  it('a row the server refuses fails only its own create: the batch is retried one by one', async () => {
    const store = fakeStore({ refuse: (ids) => (ids.includes('bad') ? pgError('22P02') : null) });
    const gc = new GroupCommit(store.insert, { maxBatch: 10, maxInFlight: 1 });
    store.hold();
    const head = gc.create(mem('head'));
    const batch = ['ok-1', 'bad', 'ok-2'].map((id) => gc.create(mem(id)));
    await tick();
    store.release();
    await head;
    const out = await Promise.allSettled(batch);
    expect(out.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((out[1] as PromiseRejectedResult).reason.code).toBe('22P02');
    expect([...store.ids].sort()).toEqual(['head', 'ok-1', 'ok-2']);
  });

  it('a failure with no server answer (the commit may or may not have happened) fails every create of the batch, retrying none', async () => {
    const lost = Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });
    const calls: string[][] = [];
    const gc = new GroupCommit(async (docs) => {
      calls.push(docs.map((d) => d.id));
      if (calls.length > 1) throw lost;
      return { positions: new Map([[docs[0]!.id, { txid: '1', seq: '1' }]]) };
    }, { maxBatch: 10, maxInFlight: 1 });
    const first = gc.create(mem('first'));
    const rest = ['a', 'b', 'c'].map((id) => gc.create(mem(id)));
    await first;
    const out = await Promise.allSettled(rest);
    expect(out.every((o) => o.status === 'rejected' && o.reason === lost)).toBe(true);
    expect(calls).toEqual([['first'], ['a', 'b', 'c']]);
  });

  it('keeps at most maxInFlight batches committing at once', async () => {
    let running = 0;
    let peak = 0;
    const gc = new GroupCommit(async (docs) => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return { positions: new Map(docs.map((d, i) => [d.id, { txid: '1', seq: String(i) }])) };
    }, { maxBatch: 2, maxInFlight: 3 });
    await Promise.all(Array.from({ length: 40 }, (_, i) => gc.create(mem(`m${i}`))));
    expect(peak).toBe(3);
  });
});
