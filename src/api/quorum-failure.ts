import type { Context } from 'hono';
import type { QuorumOutcome } from './deps.js';

/** 503 quorum_not_met exactly as docs/wire.md fixes it (the commit stands). */
export function quorumFailure(c: Context, q: Extract<QuorumOutcome, { met: false }>, id: string) {
  c.header('Retry-After', '2');
  // `id` (memfed extra) lets a client retry idempotently: the write is committed.
  return c.json({ error: 'quorum_not_met', code: 'QUORUM_NOT_MET', got: q.got, needed: q.needed, reason: q.reason, id }, 503);
}
