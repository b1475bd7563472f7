import { Hono, type Context } from 'hono';
import { badRequest } from '../../errors.js';
import { reapplyRefusals } from '../../federation/catchup-reapply.js';
import { addPeer, checkNewPeer, checkReplayPeer, checkPeerUpdate, listPeers, parsePublicKey, purgePeer, rekeyPeer, setPeerState, showPeer, updatePeer } from '../../federation/peer-admin.js';
import { listRefusals, refusalStats } from '../../store/catchup-refusals.js';
import { dlqStats, listDlq, purgeDlq, requeueQuarantined, type DlqSelector } from '../../store/dlq.js';
import { checkBody, readJson, readOptionalJson } from '../body.js';
import { parseQuery } from '../query.js';
import { dlqListParams, refusalListParams } from '../operator-params.js';
import type { AppDeps } from '../deps.js';
import { adminAuth } from '../middleware/auth.js';
import { peersNow } from '../../federation/peer-directory.js';
import { buildStatusReport, statusPeers } from '../../status/report.js';
import { checkRepairPeer } from '../../repair/operator.js';
import { documented, type RouteDoc } from '../openapi/describe.js';
import { JSON_BODY_CODES, QUERY_CODES, merge, type ErrorCodes } from '../openapi/error-codes.js';
import { looseObject } from '../openapi/responses.js';
import { z } from 'zod';

export const ADMIN_PREFIX = '/api/v1/admin';

// Peer bodies: the shape is checked here (and documented from these objects); the peer
// rules (id form, URL, flavour, key bytes) and their codes are peer-admin.ts's.
const peerAddBody = looseObject({ id: z.string(), url: z.string(), flavour: z.string().nullable().optional(), key: z.string().nullable().optional().describe('base64 of the raw 32-byte Ed25519 public key') });
const peerUpdateBody = looseObject({ url: z.string().nullable().optional(), flavour: z.string().nullable().optional() });
const peerKeyBody = looseObject({ key: z.string().nullable() });
// A peer id in the path is checked by the FED_PEERS rules (400) before it is looked up (404).
const UNKNOWN_PEER_CODES: ErrorCodes = { 400: ['INVALID_PEER'], 404: ['UNKNOWN_PEER'] };
const PEER_INPUT_CODES: ErrorCodes = { 400: ['INVALID_PEER', 'INVALID_KEY'] };

function selector(body: Record<string, unknown>, allowAll: boolean): DlqSelector {
  const sel: DlqSelector = {};
  if (body.peer !== undefined) {
    if (typeof body.peer !== 'string' || body.peer.length === 0 || body.peer.length > 128) throw badRequest('INVALID_SELECTOR', 'peer must be a peer id');
    sel.peerId = body.peer;
  }
  if (body.ids !== undefined) {
    if (!Array.isArray(body.ids) || body.ids.length > 10_000 || !body.ids.every((i) => Number.isSafeInteger(i) && (i as number) > 0)) throw badRequest('INVALID_SELECTOR', 'ids must be an array of DLQ row ids');
    sel.ids = body.ids as number[];
  }
  if (body.all === true) {
    if (!allowAll) throw badRequest('INVALID_SELECTOR', 'all is not allowed here; name a peer or ids');
    sel.all = true;
  }
  if (sel.peerId === undefined && sel.ids === undefined && !sel.all) throw badRequest('INVALID_SELECTOR', allowAll ? 'name a peer, ids, or all: true' : 'name a peer or ids');
  return sel;
}

// A JSON null, number or array has no fields to read: 400, not a TypeError (500).
function objectBody(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badRequest('INVALID_BODY', 'expected a JSON object');
  return v as Record<string, unknown>;
}

/*
 * The admin bodies as documented and checked (body.ts checkBody); selector() keeps the
 * refusals it has always given (INVALID_SELECTOR), the schemas refuse mistyped fields that
 * selector() would skip over (e.g. `"dry_run": "no"` is not a confirmation).
 */
const peer = z.string().min(1).max(128).meta({ description: 'a peer id (FED_PEERS)' });
const ids = z.array(z.number().int().positive()).max(10_000).meta({ description: 'row ids' });
const replayBody = z.object({ peer: z.string().optional().meta({ description: 'a peer id (FED_PEERS)' }) }).catchall(z.unknown()).meta({ description: 'optional; without a peer every peer\'s pending rows are replayed' });
const repairBody = z.object({ peer: z.string().min(1).meta({ description: 'an active memfed peer' }) }).catchall(z.unknown());
const requeueBody = z.object({ peer: peer.optional(), ids: ids.optional(), all: z.boolean().optional() }).catchall(z.unknown()).meta({ description: 'name a peer, ids, or all: true' });
const purgeBody = z.object({ peer: peer.optional(), ids: ids.optional(), dry_run: z.boolean().optional().meta({ description: 'default true: only `false` purges' }) }).catchall(z.unknown()).meta({ description: 'name a peer or ids' });
const reapplyBody = z.object({ peer: peer.optional(), ids: ids.optional() }).catchall(z.unknown()).meta({ description: 'optional; without a selector every pending refusal is reapplied' });

const SELECTOR_CODES = merge(JSON_BODY_CODES, { 400: ['INVALID_BODY', 'INVALID_SELECTOR'] });
const rowsAnswer = looseObject({ rows: z.array(looseObject()), count: z.number().int() });

const actorOf = (c: Context) => c.req.header('x-agent-id')?.slice(0, 128) ?? 'admin';

/** Operator tools behind ADMIN_TOKEN; every action is an audit event. */
export function adminRoutes(deps: AppDeps) {
  const { database, config, audit, operations, policy, metrics, logger } = deps;
  const db = database.db;
  const app = new Hono();
  app.use(`${ADMIN_PREFIX}/*`, adminAuth(config.adminToken));

  app.get(`${ADMIN_PREFIX}/dlq`, documented({ summary: 'List push DLQ rows', tag: 'admin', access: 'admin', query: dlqListParams, responses: { 200: { description: 'a page of DLQ rows', schema: rowsAnswer } }, errors: QUERY_CODES }), async (c) => {
    const { status, limit, offset, peer } = parseQuery(c, dlqListParams);
    const rows = await listDlq(db, { ...(peer ? { peerId: peer } : {}), ...(status ? { status } : {}), limit, offset });
    return c.json({ rows, count: rows.length });
  });

  app.get(`${ADMIN_PREFIX}/dlq/stats`, documented({ summary: 'DLQ counts by peer and status', tag: 'admin', access: 'admin', responses: { 200: { description: 'counts', schema: looseObject() } } }), async (c) => c.json(await dlqStats(db)));

  // The mesh at a glance; `memfed status --json` prints the same report.
  app.get(`${ADMIN_PREFIX}/status`, documented({ summary: "The node's view of the mesh: per peer state, lag, DLQ, failure streaks; per queue counts and workers; the audit head", tag: 'admin', access: 'admin', responses: { 200: { description: 'the status report (as memfed status --json)', schema: looseObject({ nodeId: z.string(), generatedAt: z.string(), peers: z.array(looseObject()) }) } } }), async (c) =>
    c.json(await buildStatusReport({ db, nodeId: config.nodeId, peers: await statusPeers(db, config.federation.peers), queues: operations.queueStatus })),
  );

  app.post(`${ADMIN_PREFIX}/dlq/replay`, documented({ summary: 'Replay pending DLQ rows now', tag: 'admin', access: 'admin', body: { schema: replayBody, required: false }, responses: { 202: { description: 'replay requested', schema: looseObject({ requested: z.literal(true), peer: z.string().nullable() }) } }, errors: merge(JSON_BODY_CODES, { 400: ['INVALID_BODY', 'UNKNOWN_PEER'], 409: ['PEER_NOT_ACTIVE'] }) }), async (c) => {
    const raw = await readOptionalJson(c, config.limits.maxBodyBytes);
    const body = checkBody(replayBody, raw, () => objectBody(raw));
    const peer = typeof body.peer === 'string' ? body.peer : undefined;
    if (peer !== undefined) checkReplayPeer(await peersNow(db, config.federation.peers), peer);
    await operations.requestDlqReplay(peer);
    audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'replay', peer: peer ?? null } });
    return c.json({ requested: true, peer: peer ?? null }, 202);
  });

  app.post(`${ADMIN_PREFIX}/repair`, documented({ summary: 'Run an anti-entropy repair against a memfed peer now', tag: 'admin', access: 'admin', body: { schema: repairBody }, responses: { 202: { description: 'repair requested (the repair queue runs it; see memfed_repair_* metrics and the repair.completed audit event)', schema: looseObject({ requested: z.literal(true), peer: z.string() }) } }, errors: merge(JSON_BODY_CODES, { 400: ['INVALID_BODY', 'UNKNOWN_PEER'], 409: ['PEER_NOT_ACTIVE', 'PEER_NO_REPAIR'] }) }), async (c) => {
    const raw = await readJson(c, config.limits.maxBodyBytes);
    const body = checkBody(repairBody, raw, () => objectBody(raw));
    if (typeof body.peer !== 'string' || body.peer === '') throw badRequest('INVALID_BODY', 'peer: a peer id is required', { field: 'peer' });
    checkRepairPeer(await peersNow(db, config.federation.peers), body.peer);
    await operations.requestRepair(body.peer, 'operator');
    audit.record({ kind: 'repair.operator', actor: actorOf(c), subject: body.peer, details: { action: 'repair', peer: body.peer } });
    return c.json({ requested: true, peer: body.peer }, 202);
  });

  app.post(`${ADMIN_PREFIX}/dlq/requeue`, documented({ summary: 'Requeue quarantined DLQ rows', tag: 'admin', access: 'admin', body: { schema: requeueBody }, responses: { 200: { description: 'how many rows went back to pending', schema: looseObject({ requeued: z.number().int() }) } }, errors: SELECTOR_CODES }), async (c) => {
    const raw = await readJson(c, config.limits.maxBodyBytes);
    const sel = checkBody(requeueBody, raw, () => selector(objectBody(raw), true));
    const r = await requeueQuarantined(db, sel);
    audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'requeue', selector: sel, ...r } });
    if (r.requeued > 0) await operations.requestDlqReplay(sel.peerId);
    return c.json(r);
  });

  app.post(`${ADMIN_PREFIX}/dlq/purge`, documented({ summary: 'Purge DLQ rows (dry run unless dry_run: false)', tag: 'admin', access: 'admin', body: { schema: purgeBody }, responses: { 200: { description: 'what was (or would be) purged', schema: looseObject({ dry_run: z.boolean() }) } }, errors: SELECTOR_CODES }), async (c) => {
    const raw = await readJson(c, config.limits.maxBodyBytes);
    const sel = checkBody(purgeBody, raw, () => selector(objectBody(raw), false));
    const body = raw as Record<string, unknown>;
    // Dry run unless explicitly confirmed: the first call shows what would go.
    const dryRun = body.dry_run !== false;
    const r = await purgeDlq(db, sel, dryRun);
    if (!dryRun) audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'purge', selector: sel, ...r } });
    return c.json({ ...r, dry_run: dryRun });
  });

  // Catch-up refusals: rows a pull refused for good, recorded and passed (docs/operations.md).
  app.get(`${ADMIN_PREFIX}/catchup/refusals`, documented({ summary: 'List catch-up refusals', tag: 'admin', access: 'admin', query: refusalListParams, responses: { 200: { description: 'a page of refusals', schema: rowsAnswer } }, errors: QUERY_CODES }), async (c) => {
    const { status, limit, offset, peer } = parseQuery(c, refusalListParams);
    const rows = await listRefusals(db, { ...(peer ? { peerId: peer } : {}), ...(status ? { status } : {}), limit, offset });
    return c.json({ rows, count: rows.length });
  });

  app.get(`${ADMIN_PREFIX}/catchup/refusals/stats`, documented({ summary: 'Catch-up refusal counts', tag: 'admin', access: 'admin', responses: { 200: { description: 'counts', schema: looseObject() } } }), async (c) => c.json(await refusalStats(db)));

  app.post(`${ADMIN_PREFIX}/catchup/refusals/reapply`, documented({ summary: 'Reapply pending catch-up refusals', tag: 'admin', access: 'admin', body: { schema: reapplyBody, required: false }, responses: { 200: { description: 'what was applied and what is still refused', schema: looseObject() } }, errors: SELECTOR_CODES }), async (c) => {
    const raw = await readOptionalJson(c, config.limits.maxBodyBytes);
    const sel = checkBody(reapplyBody, raw, () => {
      const body = objectBody(raw);
      return body.peer === undefined && body.ids === undefined ? {} : selector(body, false);
    });
    const r = await reapplyRefusals({ db, policy, metrics, audit, logger, clockSkewMs: config.federation.clockSkewMs, tombstoneGraceMs: config.expiry.tombstoneGraceMs, memoryMaxBytes: config.limits.memoryMaxBytes }, { ...(sel.peerId ? { peerId: sel.peerId } : {}), ...(sel.ids ? { ids: sel.ids } : {}) });
    audit.record({ kind: 'catchup.operator', actor: actorOf(c), details: { action: 'reapply', selector: sel, ...r } });
    return c.json(r);
  });

  // Peers at runtime (docs/operations.md, Managing peers at runtime): effective in every
  // process of the node within seconds; each change is an audit event.
  const peerDeps = { db, audit, nodeId: config.nodeId };
  const peerAnswer = looseObject({ peer: looseObject(), changed: z.boolean() });
  const peerDoc = (summary: string, errors: ErrorCodes, extra: Partial<RouteDoc> = {}) =>
    documented({ summary, tag: 'peers', access: 'admin', responses: { 200: { description: 'the peer after the call; changed: false when it was in that state already', schema: peerAnswer } }, errors, ...extra });
  app.get(`${ADMIN_PREFIX}/peers`, documented({ summary: "The node's peers (active, paused, removed)", tag: 'peers', access: 'admin', responses: { 200: { description: 'every peer, by id', schema: looseObject({ peers: z.array(looseObject()), count: z.number().int() }) } } }), async (c) => {
    const peers = await listPeers(db);
    return c.json({ peers, count: peers.length });
  });
  app.get(`${ADMIN_PREFIX}/peers/:id`, documented({ summary: 'One peer', tag: 'peers', access: 'admin', responses: { 200: { description: 'the peer', schema: looseObject({ peer: looseObject() }) } }, errors: UNKNOWN_PEER_CODES }), async (c) => c.json({ peer: await showPeer(db, c.req.param('id')) }));
  app.post(
    `${ADMIN_PREFIX}/peers`,
    documented({ summary: 'Add (or re-add) a peer, optionally enrolling its key', tag: 'peers', access: 'admin', body: { schema: peerAddBody }, responses: { 201: { description: 'the peer as added', schema: looseObject({ peer: looseObject() }) } }, errors: merge(JSON_BODY_CODES, PEER_INPUT_CODES, { 400: ['INVALID_BODY'], 409: ['PEER_EXISTS'] }) }),
    async (c) => {
      const raw = await readJson(c, config.limits.maxBodyBytes);
      const body = checkBody(peerAddBody, raw, () => {
        const b = objectBody(raw);
        checkNewPeer(b, config.nodeId);
        return b;
      });
      return c.json({ peer: await addPeer(peerDeps, body, actorOf(c)) }, 201);
    },
  );
  const stateRoute = (action: string, to: 'paused' | 'active' | 'removed', summary: string) =>
    app.post(`${ADMIN_PREFIX}/peers/:id/${action}`, peerDoc(summary, to === 'removed' ? UNKNOWN_PEER_CODES : merge(UNKNOWN_PEER_CODES, { 409: ['PEER_REMOVED'] })), async (c) => c.json(await setPeerState(peerDeps, c.req.param('id'), to, actorOf(c))));
  stateRoute('pause', 'paused', 'Pause a peer: nothing is sent to it, its cursor holds');
  stateRoute('resume', 'active', 'Resume a paused peer: it catches up at once');
  stateRoute('remove', 'removed', 'Remove a peer: its requests are refused; cursor and DLQ rows kept until purged');
  app.delete(`${ADMIN_PREFIX}/peers/:id`, peerDoc('Remove a peer (as POST .../remove)', UNKNOWN_PEER_CODES), async (c) => c.json(await setPeerState(peerDeps, c.req.param('id'), 'removed', actorOf(c))));
  app.patch(`${ADMIN_PREFIX}/peers/:id`, peerDoc("Change a peer's URL or flavour (cursor and key kept)", merge(JSON_BODY_CODES, UNKNOWN_PEER_CODES, { 400: ['INVALID_BODY', 'INVALID_PEER'], 409: ['PEER_REMOVED'] }), { body: { schema: peerUpdateBody } }), async (c) => {
    const raw = await readJson(c, config.limits.maxBodyBytes);
    const body = checkBody(peerUpdateBody, raw, () => {
      const b = objectBody(raw);
      checkPeerUpdate(b);
      return b;
    });
    return c.json(await updatePeer(peerDeps, c.req.param('id'), body, actorOf(c)));
  });
  app.put(`${ADMIN_PREFIX}/peers/:id/key`, peerDoc("Enrol, replace or withdraw (null) a peer's public key", merge(JSON_BODY_CODES, UNKNOWN_PEER_CODES, { 400: ['INVALID_BODY', 'INVALID_KEY'], 409: ['PEER_REMOVED'] }), { body: { schema: peerKeyBody } }), async (c) => {
    const raw = await readJson(c, config.limits.maxBodyBytes);
    const key = checkBody(peerKeyBody, raw, () => {
      const body = objectBody(raw);
      if (!('key' in body) || (body.key !== null && typeof body.key !== 'string')) throw badRequest('INVALID_KEY', 'key: a base64 Ed25519 public key, or null to withdraw it', { field: 'key' });
      return body.key === null ? null : parsePublicKey(body.key as string);
    });
    return c.json(await rekeyPeer(peerDeps, c.req.param('id'), key, actorOf(c)));
  });
  app.post(
    `${ADMIN_PREFIX}/peers/:id/purge`,
    documented({ summary: "Delete a removed peer's cursor and pull watermark", tag: 'peers', access: 'admin', responses: { 200: { description: 'what was deleted', schema: looseObject({ purged: looseObject({ cursor: z.boolean(), watermark: z.boolean() }) }) } }, errors: merge(UNKNOWN_PEER_CODES, { 409: ['PEER_NOT_REMOVED'] }) }),
    async (c) => c.json({ purged: await purgePeer(peerDeps, c.req.param('id'), actorOf(c)) }),
  );

  return app;
}
