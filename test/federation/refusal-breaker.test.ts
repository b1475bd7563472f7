import { describe, expect, it } from 'vitest';
import { RefusalBreaker, type BreakerRedis } from '../../src/federation/refusal-breaker.js';

/** A Redis that fails every command, counting the calls. */
function brokenRedis() {
  const calls: string[] = [];
  const redis: BreakerRedis = {
    eval: () => {
      calls.push('eval');
      return Promise.reject(new Error('ECONNREFUSED'));
    },
    hgetall: () => {
      calls.push('hgetall');
      return Promise.reject(new Error('ECONNREFUSED'));
    },
  };
  return { redis, calls };
}

describe('refusal breaker without its state', () => {
  it('an unreachable Redis sends in split mode and records nothing: the breaker never blocks delivery', async () => {
    const r = brokenRedis();
    const b = new RefusalBreaker(r.redis, 'p', { batches: 3, probeMs: 1000 });
    expect(await b.mode('peer-x')).toBe('split');
    expect(await b.record('peer-x', 'refused_whole', 'HTTP 422')).toBeNull();
    expect(r.calls).toEqual(['eval', 'eval']);
  });

  it('switched off (0 batches) or a neutral batch: Redis is not asked at all', async () => {
    const r = brokenRedis();
    const off = new RefusalBreaker(r.redis, 'p', { batches: 0, probeMs: 1000 });
    expect(off.enabled).toBe(false);
    expect(await off.mode('peer-x')).toBe('split');
    expect(await off.record('peer-x', 'refused_whole', 'e')).toBeNull();
    const on = new RefusalBreaker(r.redis, 'p', { batches: 3, probeMs: 1000 });
    expect(await on.record('peer-x', 'neutral', '')).toBeNull();
    expect(r.calls).toEqual([]);
  });
});
