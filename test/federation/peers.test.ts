import { describe, expect, it } from 'vitest';
import { chunkRows } from '../../src/federation/dlq-replay.js';
import { AI_MEMORY_BODY_LIMIT, flavourTraits, parsePeerList, parsePeerSpec, peerSpecFrom, pushBodyBudget } from '../../src/federation/peers.js';

describe('the peer descriptor (one parser for FED_PEERS and runtime peer management)', () => {
  it('splits an entry at its first "=", then the URL from ";" options', () => {
    expect(parsePeerSpec('host:a=http://127.0.0.1:9081;flavour=ai-memory-0.7')).toEqual({ ok: true, peer: { id: 'host:a', url: 'http://127.0.0.1:9081', flavour: 'ai-memory-0.7' } });
    expect(parsePeerSpec('a@b:c=https://x.example/p/?q=1')).toEqual({ ok: true, peer: { id: 'a@b:c', url: 'https://x.example/p/?q=1', flavour: 'memfed' } });
  });

  it('validates fields the same way as entries', () => {
    expect(peerSpecFrom({ id: 'p', url: 'http://x:1/', flavour: 'ai-memory-0.7' })).toEqual({ ok: true, peer: { id: 'p', url: 'http://x:1', flavour: 'ai-memory-0.7' } });
    expect(peerSpecFrom({ id: 'p', url: 'http://x:1' })).toEqual({ ok: true, peer: { id: 'p', url: 'http://x:1', flavour: 'memfed' } });
    expect(peerSpecFrom({ id: 'p', url: 'http://x:1', flavour: 'ai-memory' })).toMatchObject({ ok: false, problem: expect.stringContaining('unknown flavour "ai-memory"') });
    expect(peerSpecFrom({ id: 'a/b', url: 'http://x:1' })).toMatchObject({ ok: false, problem: expect.stringContaining('bad peer entry') });
    expect(peerSpecFrom({ id: 'p', url: 'file:///etc' })).toMatchObject({ ok: false, problem: expect.stringContaining('bad peer URL') });
  });

  it('lists every problem of a list and refuses duplicates', () => {
    const r = parsePeerList('a=http://x:1;flavour=nope,b=http://y:2;colour=red,c=http://z:3,c=http://z:4');
    expect(r.peers.map((p) => p.id)).toEqual(['c']);
    expect(r.problems).toHaveLength(3);
  });

  it('derives the facts of each flavour', () => {
    expect(flavourTraits('memfed')).toEqual({ requestBodyLimit: null, unsignedSincePulls: false, antiEntropy: true });
    expect(flavourTraits(undefined)).toEqual(flavourTraits('memfed'));
    expect(flavourTraits('ai-memory-0.7')).toEqual({ requestBodyLimit: AI_MEMORY_BODY_LIMIT, unsignedSincePulls: true, antiEntropy: false });
    expect(AI_MEMORY_BODY_LIMIT).toBe(2 * 1024 * 1024);
    expect(pushBodyBudget({ flavour: 'ai-memory-0.7' }, 32 * 1024 * 1024)).toBe(AI_MEMORY_BODY_LIMIT - 16 * 1024);
  });
});

describe('DLQ replay batches', () => {
  it('cut at the row count and at the byte budget; a row over the budget goes alone', () => {
    const size = (n: number) => n;
    expect(chunkRows([1, 1, 1, 1, 1], size, 2, 100)).toEqual([[1, 1], [1, 1], [1]]);
    expect(chunkRows([40, 40, 40, 150, 10], size, 10, 100)).toEqual([[40, 40], [40], [150], [10]]);
    expect(chunkRows([], size, 10, 100)).toEqual([]);
  });
});
