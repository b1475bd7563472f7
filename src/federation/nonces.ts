/** Minimal Redis surface the nonce store needs (an ioredis client fits). */
export interface NonceRedis {
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** How long, and how many per peer, bare (time-less) nonces are remembered. */
export interface BareNonceBounds {
  retentionMs: number;
  maxPerPeer: number;
}

export const DEFAULT_BARE_NONCE_BOUNDS: BareNonceBounds = { retentionMs: 7 * 24 * 3600_000, maxPerPeer: 100_000 };

// One sorted set per peer (score = arrival ms): refuse a nonce it holds; else drop entries
// past retention, add this one, evict the oldest beyond the bound, refresh the key's TTL.
// Atomic, so every API process of the node agrees on the first use.
const CLAIM_BARE = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local now = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - retention)
redis.call('ZADD', KEYS[1], now, ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n > max then redis.call('ZPOPMIN', KEYS[1], n - max) end
redis.call('PEXPIRE', KEYS[1], retention)
return 1`;

/**
 * Replay protection, in Redis so a replay is refused across restarts and across API
 * processes. memfed nonces (`<unix-ms>.<uuid>`) carry their time: SET NX with a TTL longer
 * than the clock window is enough. Bare nonces (upstream's UUIDs) carry none: each peer's
 * are kept in a sorted set, the newest `maxPerPeer` of the last `retentionMs`.
 */
export class NonceStore {
  constructor(
    private readonly redis: NonceRedis,
    private readonly prefix: string,
    private readonly windowMs: number,
    private readonly bare: BareNonceBounds = DEFAULT_BARE_NONCE_BOUNDS,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when the nonce is fresh (and is now remembered); false on replay. */
  async claim(peerId: string, nonce: string, kind: 'memfed' | 'bare'): Promise<boolean> {
    const peer = Buffer.from(peerId).toString('base64url');
    if (kind === 'memfed') {
      return (await this.redis.set(`${this.prefix}:nonce:${peer}:${nonce}`, '1', 'PX', 2 * this.windowMs + 60_000, 'NX')) === 'OK';
    }
    return Number(await this.redis.eval(CLAIM_BARE, 1, `${this.prefix}:nonce-bare:${peer}`, nonce, this.now(), this.bare.retentionMs, this.bare.maxPerPeer)) === 1;
  }
}
