import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import { burstWindow, type BurstWindow } from '../../burst-window.js';
import { ApiError, badRequest } from '../../errors.js';
import { precheckInbound, verifyInbound, type InboundResult } from '../../federation/inbound.js';
import { PEER_ID, flavourTraits, type PeerSpec } from '../../federation/peers.js';
import { pushIdentityProblem, receivePush } from '../../federation/receive.js';
import { SINCE_PAGE_MAX_BYTES, cursorPage, updatedSincePage } from '../../federation/since.js';
import { decodeSnapshotToken, snapshotPage } from '../../federation/snapshot.js';
import { classifyNonce, getSigningBytes, postSigningBytes } from '../../federation/signing.js';
import { CAPPED_LANES, LANE_MAX, parsePushBody } from '../../federation/wire.js';
import { formatTimestamp, normalizeTimestamp, nowMicros } from '../../memory/time.js';
import { decodeCursor, encodeCursor } from '../../store/feed.js';
import { readBatchBody } from '../body-slots.js';
import { checkBody, parseJsonBytes, readRawBody, requireJsonBody } from '../body.js';
import { intParam, parseQuery } from '../query.js';
import type { AppDeps } from '../deps.js';
import { HEADERS, documented } from '../openapi/describe.js';
import { BATCH_BODY_CODES, QUERY_CODES, merge } from '../openapi/error-codes.js';
import { memory, looseObject } from '../openapi/responses.js';
import { REPAIR_BODY_MAX_BYTES, REPAIR_PATH, repairRequest, repairRequestProblem, type RepairRequest } from '../../repair/protocol.js';
import { RangeTooLarge, answerRepair } from '../../repair/serve.js';
import { cursorShowsLostHistory } from '../../repair/restore-detect.js';

/** `{"error": tag}` as upstream answers, plus memfed's stable `code`. */
export function refusal(c: Context, status: number, tag: string) {
  return c.json({ error: tag, code: tag.toUpperCase() }, status as ContentfulStatusCode);
}

/** Every federation refusal: counted, logged and audited in one place. */
function recordRefusal(c: Context, deps: AppDeps, claimed: string | undefined, tag: string, status: number): void {
  // The id is claimed, not proven: only one of valid form is recorded as the actor; any
  // other is kept, cut short, as what was claimed (the recorder makes it storable).
  const valid = claimed !== undefined && PEER_ID.test(claimed);
  const shown = claimed === undefined || valid ? claimed : `${claimed.slice(0, CLAIMED_ID_MAX)}${claimed.length > CLAIMED_ID_MAX ? `...[${claimed.length} chars]` : ''}`;
  deps.metrics.inboundRefusals.inc({ reason: tag });
  if (refusalLogOf(deps).admit(tag, { peer: shown })) deps.logger.warn({ peer: shown, tag, path: c.req.path }, 'federation request refused');
  deps.audit.record({ kind: 'federation.refused', actor: valid ? claimed : 'unknown', details: { tag, status, path: c.req.path, method: c.req.method, ...(claimed !== undefined && !valid ? { claimed_peer: shown } : {}) } });
}

/**
 * Refusal log lines are throttled like refusal audit events (the same AUDIT_REFUSAL_BURST
 * per tag and AUDIT_REFUSAL_WINDOW_MS): a flood of refused requests costs one summary line
 * per tag and window, and the metric above still counts every one. One window per app.
 */
const refusalLogs = new WeakMap<AppDeps, BurstWindow<{ peer: string | undefined }>>();
function refusalLogOf(deps: AppDeps): BurstWindow<{ peer: string | undefined }> {
  let w = refusalLogs.get(deps);
  if (!w) {
    const { refusalBurst: burst, refusalWindowMs: windowMs } = deps.config.audit;
    w = burstWindow({ burst, windowMs }, ({ key: tag, suppressed, sample }) => deps.logger.warn({ tag, suppressed, window_ms: windowMs, peers_sample: sample }, 'federation requests refused (not logged one by one beyond the burst)'), { sampleOf: (e) => e.peer });
    refusalLogs.set(deps, w);
  }
  return w;
}

// What of an invalid claimed peer id is logged and audited.
const CLAIMED_ID_MAX = 64;

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

/**
 * A signed POST from a peer: the header checks first (a stranger's body is never read: it
 * could be tens of MiB), then `read` takes the body and the signature is verified over its
 * exact bytes. Answers the refusal as a Response, else the authenticated peer and the bytes.
 */
async function authenticatedBody(c: Context, deps: AppDeps, read: () => Promise<Uint8Array>): Promise<{ peerId: string; raw: Uint8Array } | Response> {
  const pre = await precheckInbound({ peerId: c.req.header('x-peer-id'), signature: c.req.header('x-memory-sig'), nonce: c.req.header('x-memory-nonce') }, inboundPolicy(deps));
  if (!pre.ok) {
    recordRefusal(c, deps, pre.peerId, pre.tag, pre.status);
    return refusal(c, pre.status, pre.tag);
  }
  requireJsonBody(c);
  const raw = await read();
  const auth = await authenticatePeer(c, deps, c.req.header('x-peer-id'), (nonce) => postSigningBytes(raw, nonce));
  if (auth instanceof Response) return auth;
  if (!auth.ok) return refusal(c, auth.status, auth.tag);
  return { peerId: auth.peerId, raw };
}

/**
 * The time given to a push's time-less lanes (upstream `deletions`, archive id lists): the
 * signed nonce's issue time when it has one (`<ms>.<uuid>`, checked against the clock
 * window), else arrival. A deletion delayed or replayed within the window then cannot
 * beat a version written after it was sent.
 */
function timelessStamp(nonce: string | undefined): number {
  const now = nowMicros();
  const form = nonce === undefined ? null : classifyNonce(nonce);
  return form?.kind === 'memfed' ? Math.min(now, form.issuedAtMs * 1000) : now;
}

/** A peer this node federates with (active or paused), by the runtime list when there is one. */
function declaredPeer({ config, federation }: AppDeps, id: string): PeerSpec | undefined {
  const dir = federation.keys.directory;
  if (!dir) return config.federation.peers.find((p) => p.id === id);
  const row = dir.get(id);
  return row && row.state !== 'removed' ? row : undefined;
}

const sinceQuery = {
  // Upstream allows 1..10000 and clamps rather than refuses.
  limit: intParam({ fallback: 500, min: 1, max: 10_000, digits: 6, clamp: 'both' }),
  since: z.string().optional().meta({ format: 'date-time', description: 'upstream form: rows updated after this time (exclusive)' }),
  cursor: z.string().optional().meta({ description: 'memfed form: the `next_cursor` of the previous page' }),
  // Read before the shape is parsed (the caller is authenticated first).
  peer: z.string().optional().meta({ description: 'the caller, when it sends no x-peer-id' }),
  to: z.string().optional().meta({ description: 'the node the caller means; must be this one' }),
};

const lane = z.array(z.unknown()).max(LANE_MAX).nullable().optional();

/**
 * POST /api/v1/sync/push as checked before parsePushBody (upstream's SyncPushBody): rows
 * are arrays of anything here, since a bad row is skipped and reported, never a refusal.
 */
const pushBody = z
  .object({
    ...Object.fromEntries(CAPPED_LANES.map((name) => [name, lane])),
    sender_agent_id: z.string().min(1).meta({ description: 'the sending node; must equal x-peer-id' }),
    memories: z.array(z.unknown()).max(LANE_MAX).meta({ description: 'memory objects (docs/wire.md); an invalid row is skipped and reported' }),
    recipient: z.string().nullable().optional().meta({ description: 'the receiving node; must be this one' }),
    dry_run: z.boolean().nullable().optional(),
  })
  .catchall(z.unknown())
  .meta({ description: `lanes of at most ${LANE_MAX} entries: ${CAPPED_LANES.join(', ')}; unknown lanes are ignored` });

const pushAnswer = looseObject({ applied: z.number().int(), deleted: z.number().int(), archived: z.number().int(), restored: z.number().int(), links_applied: z.number().int(), links_removed: z.number().int(), noop: z.number().int(), skipped: z.number().int(), unsupported_on_postgres: z.number().int() });
const sincePage = looseObject({ memories: z.array(memory), next_cursor: z.string().optional() });

export function syncRoutes(deps: AppDeps) {
  const { config, database, federation } = deps;
  const receiveDeps = { db: database.db, policy: deps.policy, metrics: deps.metrics, audit: deps.audit, clockSkewMs: config.federation.clockSkewMs, tombstoneGraceMs: config.expiry.tombstoneGraceMs, nodeId: config.nodeId };
  const app = new Hono();
  /** Peers whose unsigned since pulls were already warned about (once per peer per process). */
  const unsignedWarned = new Set<string>();

  app.post(
    '/api/v1/sync/push',
    documented({
      summary: 'Receive a push from a peer',
      description: 'Peer to peer (docs/wire.md): signed over the exact body bytes; each row is applied by last-writer-wins or skipped with a reason.',
      tag: 'federation',
      access: 'peer',
      headers: [HEADERS.peerId, HEADERS.nonce],
      body: { schema: pushBody },
      responses: { 200: { description: 'per-lane counts and per-row results', schema: pushAnswer } },
      errors: merge(BATCH_BODY_CODES, { 400: ['INVALID_PUSH', 'LANE_TOO_LARGE'], 403: ['SENDER_AGENT_ID_MISMATCH', 'RECIPIENT_MISMATCH', 'PEER_REMOVED'] }),
    }),
    async (c) => {
      const auth = await authenticatedBody(c, deps, () => readBatchBody(c, config));
      if (auth instanceof Response) return auth;
      const raw = auth.raw;
      // Per-row checks (NUL, keys, numbers) happen in validateMemory: one bad row is skipped, not the batch.
      const body = parseJsonBytes(raw, { deepChecks: false });
      const push = checkBody(pushBody, body, () => parsePushBody(body, formatTimestamp(timelessStamp(c.req.header('x-memory-nonce'))), { memoryMaxBytes: config.limits.memoryMaxBytes }), 'INVALID_PUSH');
      const identity = pushIdentityProblem(push, auth.peerId, config.nodeId);
      if (identity) return refuseAudited(c, deps, auth.peerId, identity);
      federation.onPeerContact(auth.peerId);
      return c.json(await receivePush(receiveDeps, auth.peerId, push));
    },
  );

  /*
   * GET /api/v1/sync/since. Upstream form: `since` (exclusive on updated_at) + `limit`.
   * memfed form: `cursor` over the commit-ordered change feed, returning tombstones,
   * per-row `entries` (so a puller can stop exactly at a row it failed to apply) and
   * `next_cursor`. With FED_REQUIRE_SIG=true only a signed, enrolled caller or a declared
   * ai-memory 0.7 peer (its poller never signs) is served; with it false, unsigned callers
   * that are not enrolled are served too. `to=` must name this node.
   */
  app.get(
    '/api/v1/sync/since',
    documented({
      summary: 'Serve the change feed to a peer',
      description: 'Peer to peer (docs/wire.md): with FED_REQUIRE_SIG=true only signed, enrolled callers (and declared ai-memory 0.7 peers) are served.',
      tag: 'federation',
      access: 'peer',
      headers: [HEADERS.peerId, HEADERS.nonce],
      query: sinceQuery,
      responses: { 200: { description: 'a page of the feed (cursor form also has tombstones, entries, next_cursor)', schema: sincePage } },
      errors: merge(QUERY_CODES, { 400: ['INVALID_CURSOR', 'INVALID_SINCE'], 403: ['RECIPIENT_MISMATCH', 'PEER_REMOVED'], 410: ['RESYNC_REQUIRED'] }),
    }),
    async (c) => {
      const url = new URL(c.req.url);
      const rawQuery = url.search.replace(/^\?/, '');
      const caller = c.req.header('x-peer-id') ?? c.req.query('peer');
      const signed = c.req.header('x-memory-sig') !== undefined;
      if (caller !== undefined && federation.keys.isRemoved(caller)) {
        recordRefusal(c, deps, caller, 'peer_removed', 403);
        return refusal(c, 403, 'peer_removed');
      }
      const declared = caller === undefined ? undefined : declaredPeer(deps, caller);
      if (declared && !signed && flavourTraits(declared.flavour).unsignedSincePulls) {
        // An ai-memory 0.7 poller never signs this GET (docs/wire.md, Signature matrix): it is
        // served as an unauthenticated caller would be (API_KEY still applies), never more.
        deps.metrics.unsignedSincePulls.inc({ peer: declared.id });
        if (!unsignedWarned.has(declared.id)) {
          unsignedWarned.add(declared.id);
          deps.logger.warn({ peer: declared.id, flavour: declared.flavour }, 'accepting unsigned GET /sync/since from an ai-memory 0.7 peer (its poller never signs; warned once per peer)');
        }
      } else if (caller !== undefined && (signed || config.federation.requireSig || (await federation.keys.peerKey(caller)) !== null)) {
        // FED_REQUIRE_SIG=true: every other caller that names itself goes through the matrix
        // (enrolled and unsigned -> x_memory_sig_missing, unknown -> peer_not_enrolled).
        const auth = await authenticatePeer(c, deps, caller, (nonce) => getSigningBytes(url.pathname, rawQuery, nonce));
        if (auth instanceof Response) return auth;
        if (!auth.ok) return refusal(c, auth.status, auth.tag);
        federation.onPeerContact(auth.peerId);
      } else if (signed) {
        return refusal(c, 403, 'peer_id_header_missing');
      } else if (config.federation.requireSig) {
        // No identity and no signature: nobody to authenticate, so nothing is served.
        recordRefusal(c, deps, undefined, 'peer_not_enrolled', 401);
        return refusal(c, 401, 'peer_not_enrolled');
      }
      const to = c.req.query('to');
      if (to !== undefined && to !== config.nodeId) return refuseAudited(c, deps, caller ?? 'unknown', 'recipient_mismatch');

      const q = parseQuery(c, sinceQuery);
      if (q.cursor !== undefined) {
        const after = decodeCursor(q.cursor);
        if (!after) throw badRequest('INVALID_CURSOR', 'invalid `cursor` parameter', { field: 'cursor' });
        if (caller !== undefined && declared && flavourTraits(declared.flavour).antiEntropy) await checkLostHistory(deps, caller, q.cursor, after);
        const page = await cursorPage(database.db, after, q.limit, caller);
        if ('resync' in page && page.resync) {
          // The entries after the caller's cursor were pruned: it bootstraps from a snapshot.
          deps.metrics.inboundRefusals.inc({ reason: 'resync_required' });
          deps.logger.info({ peer: caller, cursor: q.cursor, horizon: encodeCursor(page.resync) }, 'cursor behind the retained horizon: resync_required (the caller bootstraps from GET /api/v1/sync/snapshot)');
          return c.json({ error: 'resync_required', code: 'RESYNC_REQUIRED', horizon: encodeCursor(page.resync), snapshot: '/api/v1/sync/snapshot' }, 410);
        }
        return c.json(page);
      }
      const since = q.since === undefined || q.since === '' ? null : normalizeTimestamp(q.since);
      if (since === null && q.since) throw badRequest('INVALID_SINCE', 'invalid `since` parameter: expected RFC 3339', { field: 'since' });
      return c.json(await updatedSincePage(database.db, since, q.limit));
    },
  );

  /*
   * GET /api/v1/sync/snapshot: a paged, consistent copy of the current state for a memfed
   * peer whose feed cursor is behind the retained horizon (docs/wire.md, "Snapshot
   * bootstrap"). Signed like the cursor form; the caller must name itself (its snapshot is
   * its own: a token names it and works for no other caller).
   */
  app.get(
    '/api/v1/sync/snapshot',
    documented({
      summary: 'Serve a snapshot of the current state to a peer',
      description: 'Peer to peer (docs/wire.md, Snapshot bootstrap): the first page (no token) starts a snapshot at the feed head; `next_token` pages on; after the last page the caller reads the feed from `snapshot_cursor`.',
      tag: 'federation',
      access: 'peer',
      headers: [HEADERS.peerId, HEADERS.nonce],
      query: snapshotQuery,
      responses: { 200: { description: 'a page of the snapshot', schema: snapshotPageSchema } },
      errors: merge(QUERY_CODES, { 400: ['INVALID_SNAPSHOT_TOKEN'], 403: ['RECIPIENT_MISMATCH', 'PEER_REMOVED'], 410: ['SNAPSHOT_EXPIRED'] }),
    }),
    async (c) => {
      const url = new URL(c.req.url);
      const rawQuery = url.search.replace(/^\?/, '');
      const caller = c.req.header('x-peer-id') ?? c.req.query('peer');
      if (caller !== undefined && federation.keys.isRemoved(caller)) {
        recordRefusal(c, deps, caller, 'peer_removed', 403);
        return refusal(c, 403, 'peer_removed');
      }
      if (caller === undefined) {
        recordRefusal(c, deps, undefined, 'peer_id_header_missing', 401);
        return refusal(c, 401, 'peer_id_header_missing');
      }
      const auth = await authenticatePeer(c, deps, caller, (nonce) => getSigningBytes(url.pathname, rawQuery, nonce));
      if (auth instanceof Response) return auth;
      if (!auth.ok) return refusal(c, auth.status, auth.tag);
      const to = c.req.query('to');
      if (to !== undefined && to !== config.nodeId) return refuseAudited(c, deps, auth.peerId, 'recipient_mismatch');
      const q = parseQuery(c, snapshotQuery);
      const token = q.token === undefined || q.token === '' ? null : decodeSnapshotToken(q.token);
      if (token === null && q.token) throw badRequest('INVALID_SNAPSHOT_TOKEN', 'invalid `token` parameter', { field: 'token' });
      const r = await snapshotPage(database.db, auth.peerId, token, q.limit, { ttlMs: config.retention.snapshotTtlMs, maxBytes: SINCE_PAGE_MAX_BYTES });
      if (!r.ok) {
        deps.logger.info({ peer: auth.peerId }, 'snapshot token names a snapshot replaced or idle too long: snapshot_expired (the caller starts again)');
        return c.json({ error: 'snapshot_expired', code: 'SNAPSHOT_EXPIRED' }, 410);
      }
      if (token === null) deps.logger.info({ peer: auth.peerId, snapshot_cursor: r.page.snapshot_cursor }, 'snapshot started for a peer');
      deps.metrics.snapshotPages.inc({ peer: auth.peerId, direction: 'served' });
      deps.metrics.snapshotRows.inc({ peer: auth.peerId, direction: 'served' }, r.rows);
      return c.json(r.page);
    },
  );

  /**
   * POST /api/v1/sync/repair: anti-entropy between memfed nodes (docs/wire.md). Signed over
   * the exact body bytes as a push; the body names one operation (bucket digests, row keys
   * of small buckets, or rows by id), each answer bounded.
   */
  app.post(
    REPAIR_PATH,
    documented({
      summary: 'Answer an anti-entropy repair request from a memfed peer',
      description: 'Peer to peer (docs/wire.md, Anti-entropy repair): bucket digests, row keys of buckets, or rows by id. memfed peers only.',
      tag: 'federation',
      access: 'peer',
      headers: [HEADERS.peerId, HEADERS.nonce],
      body: { schema: repairRequest },
      responses: { 200: { description: 'the digests, keys or rows asked for', schema: looseObject() } },
      errors: merge(BATCH_BODY_CODES, { 400: ['INVALID_REPAIR', 'REPAIR_RANGE_TOO_LARGE'], 403: ['SENDER_AGENT_ID_MISMATCH', 'RECIPIENT_MISMATCH', 'PEER_REMOVED'] }),
    }),
    async (c) => {
      const auth = await authenticatedBody(c, deps, () => readRawBody(c, REPAIR_BODY_MAX_BYTES));
      if (auth instanceof Response) return auth;
      const raw = auth.raw;
      const body = parseJsonBytes(raw);
      const req = checkBody(repairRequest, body, (): RepairRequest => {
        const r = repairRequest.safeParse(body);
        if (!r.success) {
          const issue = r.error.issues[0];
          throw badRequest('INVALID_REPAIR', `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid repair request'}`);
        }
        const problem = repairRequestProblem(r.data);
        if (problem) throw badRequest('INVALID_REPAIR', problem);
        return r.data;
      }, 'INVALID_REPAIR');
      if (req.sender_agent_id !== auth.peerId) return refuseAudited(c, deps, auth.peerId, 'sender_agent_id_mismatch');
      if (req.recipient !== config.nodeId) return refuseAudited(c, deps, auth.peerId, 'recipient_mismatch');
      federation.onPeerContact(auth.peerId);
      try {
        return c.json(await answerRepair(database.db, config.nodeId, auth.peerId, req));
      } catch (err) {
        if (err instanceof RangeTooLarge) throw new ApiError(400, 'REPAIR_RANGE_TOO_LARGE', err.message);
        throw err;
      }
    },
  );

  return app;
}

const snapshotQuery = {
  limit: intParam({ fallback: 500, min: 1, max: 10_000, digits: 6, clamp: 'both' }),
  token: z.string().optional().meta({ description: 'the `next_token` of the previous page; absent: start a new snapshot' }),
  peer: z.string().optional().meta({ description: 'the caller, when it sends no x-peer-id' }),
  to: z.string().optional().meta({ description: 'the node the caller means; must be this one' }),
};
const snapshotPageSchema = looseObject({ memories: z.array(memory), tombstones: z.array(z.unknown()), snapshot_cursor: z.string(), next_token: z.string().nullable(), has_more: z.boolean() });

/**
 * A memfed peer's cursor names a feed entry this node no longer has (restored from an
 * older backup, or feed history lost): recorded once per (peer, cursor) in this process,
 * and a post-restore repair against every peer requested (deduplicated per peer).
 */
const reportedCursors = new WeakMap<AppDeps, Set<string>>();
async function checkLostHistory(deps: AppDeps, caller: string, raw: string, after: { txid: string; seq: string }): Promise<void> {
  let seen = reportedCursors.get(deps);
  if (!seen) reportedCursors.set(deps, (seen = new Set()));
  const key = `${caller} ${raw}`;
  if (seen.has(key)) return;
  if (!(await cursorShowsLostHistory(deps.database.db, after))) return;
  seen.add(key);
  deps.metrics.restoreDetections.inc();
  deps.logger.warn({ peer: caller, cursor: raw }, 'a peer holds a feed position this node does not have: restored from an older backup or feed history lost; repairing against every peer');
  deps.audit.record({ kind: 'repair.restore_detected', actor: deps.config.nodeId, details: { peer: caller, cursor: raw } });
  // The pull itself is still served: positions written since sort after the cursor.
  await deps.operations.requestRepair(null, 'restored').catch((err: Error) => {
    seen.delete(key);
    deps.logger.error({ err: err.message }, 'could not request the post-restore repair; the next pull with this cursor asks again');
  });
}
