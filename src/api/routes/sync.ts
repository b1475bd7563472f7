import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { verifyInbound, type InboundResult } from '../../federation/inbound.js';
import { postSigningBytes } from '../../federation/signing.js';
import { parsePushBody, type RowResult } from '../../federation/wire.js';
import { formatTimestamp, nowMicros } from '../../memory/time.js';
import { applyReplicated } from '../../store/replica.js';
import { parseJsonBytes, readRawBody } from '../body.js';
import type { AppDeps } from '../deps.js';

/** `{"error": tag}` as upstream answers, plus memfed's stable `code`. */
export function refusal(c: Context, status: number, tag: string) {
  return c.json({ error: tag, code: tag.toUpperCase() }, status as ContentfulStatusCode);
}

/** Runs the signature matrix; a Redis outage fails closed (503) rather than open. */
export async function authenticatePeer(c: Context, deps: AppDeps, signedBytes: (nonce: string | undefined) => Uint8Array): Promise<InboundResult | Response> {
  const { config, federation, metrics, logger } = deps;
  try {
    const r = await verifyInbound(
      { peerId: c.req.header('x-peer-id'), signature: c.req.header('x-memory-sig'), nonce: c.req.header('x-memory-nonce'), signedBytes },
      { keys: federation.keys, nonces: federation.nonces, requireSig: config.federation.requireSig, clockSkewMs: config.federation.clockSkewMs },
    );
    if (!r.ok) {
      metrics.inboundRefusals.inc({ reason: r.tag });
      logger.warn({ peer: r.peerId, tag: r.tag, path: c.req.path }, 'federation request refused');
    } else if (!r.signed) logger.warn({ peer: r.peerId }, 'accepting unsigned federation request (FED_REQUIRE_SIG=false)');
    return r;
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'nonce store unavailable');
    c.header('Retry-After', '2');
    return c.json({ error: 'nonce_store_unavailable', code: 'NONCE_STORE_UNAVAILABLE' }, 503);
  }
}

export function syncRoutes(deps: AppDeps) {
  const { config, database, metrics, federation } = deps;
  const app = new Hono();

  app.post('/api/v1/sync/push', async (c) => {
    // Verify the exact raw bytes before parsing anything.
    const raw = await readRawBody(c, config.limits.maxBatchBodyBytes);
    const auth = await authenticatePeer(c, deps, (nonce) => postSigningBytes(raw, nonce));
    if (auth instanceof Response) return auth;
    if (!auth.ok) return refusal(c, auth.status, auth.tag);
    const push = parsePushBody(parseJsonBytes(raw), formatTimestamp(nowMicros()));
    if (push.sender !== auth.peerId) return refusal(c, 403, 'sender_agent_id_mismatch');
    if (push.recipient !== undefined && push.recipient !== config.nodeId) return refusal(c, 403, 'recipient_mismatch');
    federation.onPeerContact(auth.peerId);

    const results: RowResult[] = [...push.skipped];
    let applied = 0, deleted = 0, noop = 0;
    if (push.dryRun) {
      for (const m of push.memories) results.push({ id: m.id, status: 'noop' });
      for (const t of push.tombstones) results.push({ id: t.id, status: 'noop' });
    } else {
      const out = await applyReplicated(database.db, { memories: push.memories, tombstones: push.tombstones, originPeer: auth.peerId });
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

  return app;
}
