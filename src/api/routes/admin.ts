import { Hono, type Context } from 'hono';
import { badRequest } from '../../errors.js';
import { reapplyRefusals } from '../../federation/catchup-reapply.js';
import { addPeer, listPeers, parsePublicKey, purgePeer, rekeyPeer, setPeerState, showPeer, updatePeer } from '../../federation/peer-admin.js';
import { PEER_ID } from '../../federation/peers.js';
import { getPeerRow } from '../../store/peers.js';
import { listRefusals, refusalStats } from '../../store/catchup-refusals.js';
import { dlqStats, listDlq, purgeDlq, requeueQuarantined, type DlqSelector } from '../../store/dlq.js';
import { readJson, readOptionalJson } from '../body.js';
import { parseQuery } from '../query.js';
import { dlqListParams, refusalListParams } from '../operator-params.js';
import type { AppDeps } from '../deps.js';
import { adminAuth } from '../middleware/auth.js';

export const ADMIN_PREFIX = '/api/v1/admin';

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

const actorOf = (c: Context) => c.req.header('x-agent-id')?.slice(0, 128) ?? 'admin';

/** Operator tools behind ADMIN_TOKEN; every action is an audit event. */
export function adminRoutes(deps: AppDeps) {
  const { database, config, audit, operations, policy, metrics, logger } = deps;
  const db = database.db;
  const app = new Hono();
  app.use(`${ADMIN_PREFIX}/*`, adminAuth(config.adminToken));

  app.get(`${ADMIN_PREFIX}/dlq`, async (c) => {
    const { status, limit, offset, peer } = parseQuery(c, dlqListParams);
    const rows = await listDlq(db, { ...(peer ? { peerId: peer } : {}), ...(status ? { status } : {}), limit, offset });
    return c.json({ rows, count: rows.length });
  });

  app.get(`${ADMIN_PREFIX}/dlq/stats`, async (c) => c.json(await dlqStats(db)));

  app.post(`${ADMIN_PREFIX}/dlq/replay`, async (c) => {
    const body = objectBody(await readOptionalJson(c, config.limits.maxBodyBytes));
    const peer = typeof body.peer === 'string' ? body.peer : undefined;
    if (peer !== undefined && !config.federation.peers.some((p) => p.id === peer) && !(PEER_ID.test(peer) && (await getPeerRow(db, peer)))) throw badRequest('UNKNOWN_PEER', `peer ${peer} is not configured (GET ${ADMIN_PREFIX}/peers)`);
    await operations.requestDlqReplay(peer);
    audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'replay', peer: peer ?? null } });
    return c.json({ requested: true, peer: peer ?? null }, 202);
  });

  app.post(`${ADMIN_PREFIX}/dlq/requeue`, async (c) => {
    const body = objectBody(await readJson(c, config.limits.maxBodyBytes));
    const sel = selector(body, true);
    const r = await requeueQuarantined(db, sel);
    audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'requeue', selector: sel, ...r } });
    if (r.requeued > 0) await operations.requestDlqReplay(sel.peerId);
    return c.json(r);
  });

  app.post(`${ADMIN_PREFIX}/dlq/purge`, async (c) => {
    const body = objectBody(await readJson(c, config.limits.maxBodyBytes));
    const sel = selector(body, false);
    // Dry run unless explicitly confirmed: the first call shows what would go.
    const dryRun = body.dry_run !== false;
    const r = await purgeDlq(db, sel, dryRun);
    if (!dryRun) audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'purge', selector: sel, ...r } });
    return c.json({ ...r, dry_run: dryRun });
  });

  // Catch-up refusals: rows a pull refused for good, recorded and passed (docs/operations.md).
  app.get(`${ADMIN_PREFIX}/catchup/refusals`, async (c) => {
    const { status, limit, offset, peer } = parseQuery(c, refusalListParams);
    const rows = await listRefusals(db, { ...(peer ? { peerId: peer } : {}), ...(status ? { status } : {}), limit, offset });
    return c.json({ rows, count: rows.length });
  });

  app.get(`${ADMIN_PREFIX}/catchup/refusals/stats`, async (c) => c.json(await refusalStats(db)));

  app.post(`${ADMIN_PREFIX}/catchup/refusals/reapply`, async (c) => {
    const body = objectBody(await readOptionalJson(c, config.limits.maxBodyBytes));
    const sel = body.peer === undefined && body.ids === undefined ? {} : selector(body, false);
    const r = await reapplyRefusals({ db, policy, metrics, audit, logger, clockSkewMs: config.federation.clockSkewMs, memoryMaxBytes: config.limits.memoryMaxBytes }, { ...(sel.peerId ? { peerId: sel.peerId } : {}), ...(sel.ids ? { ids: sel.ids } : {}) });
    audit.record({ kind: 'catchup.operator', actor: actorOf(c), details: { action: 'reapply', selector: sel, ...r } });
    return c.json(r);
  });

  // Peers at runtime (docs/operations.md, Managing peers at runtime): effective in every
  // process of the node within seconds; each change is an audit event.
  const peerDeps = { db, audit, nodeId: config.nodeId };
  app.get(`${ADMIN_PREFIX}/peers`, async (c) => {
    const peers = await listPeers(db);
    return c.json({ peers, count: peers.length });
  });
  app.get(`${ADMIN_PREFIX}/peers/:id`, async (c) => c.json({ peer: await showPeer(db, c.req.param('id')) }));
  app.post(`${ADMIN_PREFIX}/peers`, async (c) => {
    const body = objectBody(await readJson(c, config.limits.maxBodyBytes));
    return c.json({ peer: await addPeer(peerDeps, body, actorOf(c)) }, 201);
  });
  const stateRoute = (action: string, to: 'paused' | 'active' | 'removed') =>
    app.post(`${ADMIN_PREFIX}/peers/:id/${action}`, async (c) => c.json(await setPeerState(peerDeps, c.req.param('id'), to, actorOf(c))));
  stateRoute('pause', 'paused');
  stateRoute('resume', 'active');
  stateRoute('remove', 'removed');
  app.delete(`${ADMIN_PREFIX}/peers/:id`, async (c) => c.json(await setPeerState(peerDeps, c.req.param('id'), 'removed', actorOf(c))));
  app.patch(`${ADMIN_PREFIX}/peers/:id`, async (c) => {
    const body = objectBody(await readJson(c, config.limits.maxBodyBytes));
    return c.json(await updatePeer(peerDeps, c.req.param('id'), body, actorOf(c)));
  });
  app.put(`${ADMIN_PREFIX}/peers/:id/key`, async (c) => {
    const body = objectBody(await readJson(c, config.limits.maxBodyBytes));
    if (!('key' in body) || (body.key !== null && typeof body.key !== 'string')) throw badRequest('INVALID_KEY', 'key: a base64 Ed25519 public key, or null to withdraw it', { field: 'key' });
    const key = body.key === null ? null : parsePublicKey(body.key as string);
    return c.json(await rekeyPeer(peerDeps, c.req.param('id'), key, actorOf(c)));
  });
  app.post(`${ADMIN_PREFIX}/peers/:id/purge`, async (c) => c.json({ purged: await purgePeer(peerDeps, c.req.param('id'), actorOf(c)) }));

  return app;
}
