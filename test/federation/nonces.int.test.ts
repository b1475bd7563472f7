import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { NonceStore } from '../../src/federation/nonces.js';
import { dropPrefix } from '../helpers/redis.js';
import { REDIS_URL, uniqueSuffix } from '../helpers/env.js';

// Bare (upstream UUID) nonces carry no time: only memory stops their replay. That memory
// lives in Redis, so it is shared by every API process and outlives a restart.
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const prefixes: string[] = [];
const prefix = () => {
  const p = `nonces-${uniqueSuffix()}`;
  prefixes.push(p);
  return p;
};
afterAll(async () => {
  for (const p of prefixes) await dropPrefix(p);
  redis.disconnect();
});

describe('bare nonces in Redis', () => {
  it('a bare nonce used at one API process is refused at another, and after a restart', async () => {
    const p = prefix();
    const nonce = randomUUID();
    const apiOne = new NonceStore(redis, p, 300_000);
    const second = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const apiTwo = new NonceStore(second, p, 300_000);
    expect(await apiOne.claim('peer-u', nonce, 'bare')).toBe(true);
    expect(await apiTwo.claim('peer-u', nonce, 'bare')).toBe(false);
    second.disconnect();
    // A restarted process starts with nothing in memory.
    const restarted = new NonceStore(redis, p, 300_000);
    expect(await restarted.claim('peer-u', nonce, 'bare')).toBe(false);
    // Per peer: another peer's use of the same value is its own.
    expect(await restarted.claim('peer-v', nonce, 'bare')).toBe(true);
  });

  it('keeps at most maxPerPeer nonces per peer, evicting the oldest, with the retention as TTL', async () => {
    const p = prefix();
    let now = 1_000_000;
    const store = new NonceStore(redis, p, 300_000, { retentionMs: 3_600_000, maxPerPeer: 3 }, () => now);
    for (const n of ['n1-xxxxxxxx', 'n2-xxxxxxxx', 'n3-xxxxxxxx', 'n4-xxxxxxxx']) {
      now += 1;
      expect(await store.claim('p', n, 'bare')).toBe(true);
    }
    const key = `${p}:nonce-bare:${Buffer.from('p').toString('base64url')}`;
    expect(await redis.zcard(key)).toBe(3);
    expect(await redis.zscore(key, 'n1-xxxxxxxx')).toBeNull();
    expect(await store.claim('p', 'n4-xxxxxxxx', 'bare')).toBe(false);
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
  });

  it('forgets a bare nonce once it is older than the retention', async () => {
    const p = prefix();
    let now = 5_000_000;
    const store = new NonceStore(redis, p, 300_000, { retentionMs: 3_600_000, maxPerPeer: 100 }, () => now);
    expect(await store.claim('p', 'old-xxxxxxxx', 'bare')).toBe(true);
    now += 3_600_001;
    // Another claim trims what is past retention; the old nonce is then new again.
    expect(await store.claim('p', 'new-xxxxxxxx', 'bare')).toBe(true);
    expect(await store.claim('p', 'old-xxxxxxxx', 'bare')).toBe(true);
    expect(await store.claim('p', 'new-xxxxxxxx', 'bare')).toBe(false);
  });
});
