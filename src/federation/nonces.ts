/** Minimal Redis surface the nonce store needs (an ioredis client fits). */
export interface NonceRedis {
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
}

/**
 * Replay protection. memfed nonces (`<unix-ms>.<uuid>`) are remembered in Redis with
 * SET NX and a TTL longer than the clock window, so a replay is refused across restarts
 * and across API replicas. Bare upstream UUIDs fall back to a bounded per-peer cache.
 */
export class NonceStore {
  private bare = new Map<string, Set<string>>();

  constructor(
    private readonly redis: NonceRedis,
    private readonly prefix: string,
    private readonly windowMs: number,
    private readonly barePerPeer = 10_000,
  ) {}

  /** True when the nonce is fresh (and is now remembered); false on replay. */
  async claim(peerId: string, nonce: string, kind: 'memfed' | 'bare'): Promise<boolean> {
    if (kind === 'memfed') {
      const key = `${this.prefix}:nonce:${Buffer.from(peerId).toString('base64url')}:${nonce}`;
      return (await this.redis.set(key, '1', 'PX', 2 * this.windowMs + 60_000, 'NX')) === 'OK';
    }
    let seen = this.bare.get(peerId);
    if (!seen) {
      if (this.bare.size >= 10_000) this.bare.clear();
      seen = new Set();
      this.bare.set(peerId, seen);
    }
    if (seen.has(nonce)) return false;
    seen.add(nonce);
    if (seen.size > this.barePerPeer) seen.delete(seen.values().next().value as string);
    return true;
  }
}
