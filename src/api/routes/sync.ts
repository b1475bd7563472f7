import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { precheckInbound, verifyInbound, type InboundResult } from '../../federation/inbound.js';
import { admitReplicated } from '../../federation/admission.js';
import { getSigningBytes, postSigningBytes } from '../../federation/signing.js';
import { parsePushBody, type RowResult } from '../../federation/wire.js';
import { formatTimestamp, normalizeTimestamp, nowMicros } from '../../memory/time.js';
import { countAfter, decodeCursor, encodeCursor, readFeed } from '../../store/feed.js';
import { memoriesUpdatedSince } from '../../store/memories.js';
import { applyReplicated, loadStored, type Tombstone } from '../../store/replica.js';
import type { Memory } from '../../memory/model.js';
import { parseJsonBytes, readRawBody } from '../body.js';
import type { AppDeps } from '../deps.js';

/** `{"error": tag}` as upstream answers, plus memfed's stable `code`. */
export function refusal(c: Context, status: number, tag: string) {
  return c.json({ error: tag, code: tag.toUpperCase() }, status as ContentfulStatusCode);
}

/** Every federation refusal: counted, logged and audited in one place. */
function recordRefusal(c: Context, deps: AppDeps, peerId: string | undefined, tag: string, status: number): void {
  deps.metrics.inboundRefusals.inc({ reason: tag });
  deps.logger.warn({ peer: peerId, tag, path: c.req.path }, 'federation request refused');
  deps.audit.record({ kind: 'federation.refused', actor: peerId ?? 'unknown', details: { tag, status, path: c.req.path, method: c.req.method } });
}

/** A refusal decided after authentication (audience, identity). */
function refuseAudited(c: Context, deps: AppDeps, peerId: string, tag: string) {
  recordRefusal(c, deps, peerId, tag, 403);
  return refusal(c, 403, tag);
}

const inboundPolicy = ({ config, federation }: AppDeps) => ({
  keys: federation.keys,
  nonces: federation.nonces,
  requireSig: config.federation.requireSig,
  clockSkewMs: config.federation.clockSkewMs,
});

/** Runs the signature matrix; a Redis outage fails closed (503) rather than open. */
export async function authenticatePeer(c: Context, deps: AppDeps, peerId: string | undefined, signedBytes: (nonce: string | undefined) => Uint8Array): Promise<InboundResult | Response> {
  const { logger } = deps;
  try {
    const r = await verifyInbound({ peerId, signature: c.req.header('x-memory-sig'), nonce: c.req.header('x-memory-nonce'), signedBytes }, inboundPolicy(deps));
    if (!r.ok) recordRefusal(c, deps, r.peerId, r.tag, r.status);
    else if (!r.signed) logger.warn({ peer: r.peerId }, 'accepting unsigned federation request (FED_REQUIRE_SIG=false)');
    return r;
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'nonce store unavailable');
    c.header('Retry-After', '2');
    return c.json({ error: 'nonce_store_unavailable', code: 'NONCE_STORE_UNAVAILABLE' }, 503);
  }
}

/** Page byte budget for GET /sync/since, well below what a memfed puller accepts (8 MiB). */
const SINCE_PAGE_MAX_BYTES = 4 * 1024 * 1024;

export function syncRoutes(deps: AppDeps) {
  const { config, database, metrics, federation } = deps;
  const app = new Hono();

  app.post('/api/v1/sync/push', async (c) => {
    // Header checks first: a stranger's body is never read (it could be tens of MiB).
    const pre = await precheckInbound({ peerId: c.req.header('x-peer-id'), signature: c.req.header('x-memory-sig'), nonce: c.req.header('x-memory-nonce') }, inboundPolicy(deps));
    if (!pre.ok) {
      recordRefusal(c, deps, pre.peerId, pre.tag, pre.status);
      return refusal(c, pre.status, pre.tag);
    }
    // Verify the exact raw bytes before parsing anything.
    const raw = await readRawBody(c, config.limits.maxBatchBodyBytes);
    const auth = await authenticatePeer(c, deps, c.req.header('x-peer-id'), (nonce) => postSigningBytes(raw, nonce));
    if (auth instanceof Response) return auth;
    if (!auth.ok) return refusal(c, auth.status, auth.tag);
    // Per-row checks (NUL, keys, numbers) happen in validateMemory: one bad row is skipped, not the batch.
    const push = parsePushBody(parseJsonBytes(raw, { deepChecks: false }), formatTimestamp(nowMicros()));
    if (push.sender !== auth.peerId) return refuseAudited(c, deps, auth.peerId, 'sender_agent_id_mismatch');
    if (push.recipient !== undefined && push.recipient !== config.nodeId) return refuseAudited(c, deps, auth.peerId, 'recipient_mismatch');
    federation.onPeerContact(auth.peerId);
    // Governance: rows this peer may not write (or delete) are refused one by one (skipped + audited).
    const admitted = await admitReplicated(database.db, deps.policy, auth.peerId, push, config.federation.clockSkewMs);
    push.memories = admitted.memories;
    push.tombstones = admitted.tombstones;
    for (const r of admitted.refused) push.skipped.push({ id: r.id, status: 'skipped', reason: `${r.code}: ${r.reason}` });
    const refusedRows = admitted.refused.map((r) => ({ id: r.id, code: r.code, rule: r.rule, lane: r.lane }));
    if (refusedRows.some((r) => r.code !== 'FUTURE_TIMESTAMP')) deps.audit.record({ kind: 'governance.refused', actor: auth.peerId, details: { via: 'push', rows: refusedRows.slice(0, 100), count: refusedRows.length } });

    const results: RowResult[] = [...push.skipped];
    let applied = 0, deleted = 0, noop = 0;
    if (push.dryRun) {
      for (const m of push.memories) results.push({ id: m.id, status: 'noop' });
      for (const t of push.tombstones) results.push({ id: t.id, status: 'noop' });
    } else {
      const out = await applyReplicated(database.db, { memories: push.memories, tombstones: push.tombstones, originPeer: auth.peerId });
      if (out.deleted.length > 0) deps.audit.record({ kind: 'memory.deleted', actor: auth.peerId, details: { via: 'push', ids: out.deleted.slice(0, 100), count: out.deleted.length } });
      const appliedSet = new Set(out.applied), deletedSet = new Set(out.deleted);
      for (const m of push.memories) results.push({ id: m.id, status: appliedSet.has(m.id) ? 'applied' : 'noop' });
      for (const t of push.tombstones) results.push({ id: t.id, status: deletedSet.has(t.id) ? 'applied' : 'noop' });
      applied = out.applied.length;
      deleted = out.deleted.length;
      noop = out.noop.length;
      metrics.appliedRows.inc({ status: 'applied', via: 'push' }, applied + deleted);
      metrics.appliedRows.inc({ status: 'noop', via: 'push' }, noop);
    }
    metrics.appliedRows.inc({ status: 'skipped', via: 'push' }, push.skipped.length);
    return c.json({
      applied,
      deleted,
      noop,
      skipped: push.skipped.length,
      dry_run: push.dryRun,
      receiver_agent_id: config.nodeId,
      results,
      ...(Object.keys(push.ignoredLanes).length > 0 ? { ignored: push.ignoredLanes } : {}),
    });
  });

  /*
   * GET /api/v1/sync/since. Upstream form: `since` (exclusive on updated_at) + `limit`.
   * memfed form: `cursor` over the commit-ordered change feed, returning tombstones,
   * per-row `entries` (so a puller can stop exactly at a row it failed to apply) and
   * `next_cursor`. Enrolled callers must sign; `to=` must name this node.
   */
  app.get('/api/v1/sync/since', async (c) => {
    const url = new URL(c.req.url);
    const rawQuery = url.search.replace(/^\?/, '');
    const caller = c.req.header('x-peer-id') ?? c.req.query('peer');
    const signed = c.req.header('x-memory-sig') !== undefined;
    if (caller !== undefined && (signed || (await federation.keys.peerKey(caller)) !== null)) {
      const auth = await authenticatePeer(c, deps, caller, (nonce) => getSigningBytes(url.pathname, rawQuery, nonce));
      if (auth instanceof Response) return auth;
      if (!auth.ok) return refusal(c, auth.status, auth.tag);
      federation.onPeerContact(auth.peerId);
    } else if (signed) {
      return refusal(c, 403, 'peer_id_header_missing');
    }
    const to = c.req.query('to');
    if (to !== undefined && to !== config.nodeId) return refuseAudited(c, deps, caller ?? 'unknown', 'recipient_mismatch');

    const limitRaw = c.req.query('limit');
    const limit = limitRaw === undefined || limitRaw === '' ? 500 : /^\d{1,6}$/.test(limitRaw) ? Math.min(Math.max(Number(limitRaw), 1), 10_000) : NaN;
    if (Number.isNaN(limit)) return c.json({ error: 'invalid `limit` parameter: expected an integer', code: 'INVALID_QUERY' }, 400);

    const cursorRaw = c.req.query('cursor');
    if (cursorRaw !== undefined) {
      const after = decodeCursor(cursorRaw);
      if (!after) return c.json({ error: 'invalid `cursor` parameter', code: 'INVALID_CURSOR' }, 400);
      const raw = await readFeed(database.db, after, limit);
      // Changes that came from the caller are not sent back to it.
      const forCaller = (e: (typeof raw)[number]) => e.originPeer === null || e.originPeer !== caller;
      const stored = await loadStored(database.db, [...new Set(raw.filter(forCaller).map((e) => e.memoryId))]);
      const memories: Memory[] = [];
      const tombstones: Tombstone[] = [];
      const seen = new Set<string>();
      const rows: Array<{ id: string; cursor: string }> = [];
      // A byte budget as well as a row limit: a page of large memories stays well under
      // what a puller accepts. The page then ends early (at an entry boundary).
      let bytes = 0;
      let last = raw.at(-1);
      let cut = false;
      for (const e of raw) {
        const s = forCaller(e) ? stored.get(e.memoryId) : undefined;
        if (s && !seen.has(e.memoryId)) {
          const size = s.deletedAt === null ? Buffer.byteLength(JSON.stringify(s.memory)) : 100;
          if (rows.length > 0 && bytes + size > SINCE_PAGE_MAX_BYTES) {
            cut = true;
            break;
          }
          bytes += size;
          seen.add(e.memoryId);
          if (s.deletedAt === null) memories.push(s.memory);
          else tombstones.push({ id: e.memoryId, deleted_at: s.deletedAt });
        }
        if (s) rows.push({ id: e.memoryId, cursor: encodeCursor(e) });
        last = e;
      }
      const hasMore = cut || raw.length === limit;
      return c.json({
        ...sinceEnvelope(memories, limit, null),
        tombstones,
        entries: rows,
        next_cursor: last ? encodeCursor(last) : cursorRaw,
        has_more: hasMore,
        // How far behind the caller still is after this page (capped): its lag figure.
        remaining: hasMore && last ? await countAfter(database.db, last, 1_000_000) : 0,
      });
    }

    const sinceRaw = c.req.query('since');
    let since: string | null = null;
    if (sinceRaw !== undefined && sinceRaw !== '') {
      since = normalizeTimestamp(sinceRaw);
      if (since === null) return c.json({ error: 'invalid `since` parameter: expected RFC 3339', code: 'INVALID_SINCE' }, 400);
    }
    // Same byte budget; a shorter page is fine: the caller re-asks from latest_updated_at.
    const page = await memoriesUpdatedSince(database.db, since, limit);
    const memories: Memory[] = [];
    let bytes = 0;
    for (const m of page) {
      bytes += Buffer.byteLength(JSON.stringify(m));
      if (memories.length > 0 && bytes > SINCE_PAGE_MAX_BYTES) break;
      memories.push(m);
    }
    return c.json(sinceEnvelope(memories, limit, since));
  });

  return app;
}

function sinceEnvelope(memories: Memory[], limit: number, since: string | null) {
  let earliest: string | null = null;
  let latest: string | null = null;
  for (const m of memories) {
    if (earliest === null || m.updated_at < earliest) earliest = m.updated_at;
    if (latest === null || m.updated_at > latest) latest = m.updated_at;
  }
  return { count: memories.length, limit, updated_since: since, earliest_updated_at: earliest, latest_updated_at: latest, memories };
}
