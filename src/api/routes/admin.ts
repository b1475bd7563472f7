import { Hono, type Context } from 'hono';
import { badRequest } from '../../errors.js';
import { reapplyRefusals } from '../../federation/catchup-reapply.js';
import { listRefusals, refusalStats } from '../../store/catchup-refusals.js';
import { dlqStats, listDlq, purgeDlq, requeueQuarantined, type DlqSelector } from '../../store/dlq.js';
import { checkBody, readJson, readOptionalJson } from '../body.js';
import { parseQuery } from '../query.js';
import { dlqListParams, refusalListParams } from '../operator-params.js';
import type { AppDeps } from '../deps.js';
import { adminAuth } from '../middleware/auth.js';
import { buildStatusReport } from '../../status/report.js';
import { documented } from '../openapi/describe.js';
import { JSON_BODY_CODES, QUERY_CODES, merge } from '../openapi/error-codes.js';
import { looseObject } from '../openapi/responses.js';
import { z } from 'zod';

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

/*
 * The admin bodies as documented and checked (body.ts checkBody); selector() keeps the
 * refusals it has always given (INVALID_SELECTOR), the schemas refuse mistyped fields that
 * selector() would skip over (e.g. `"dry_run": "no"` is not a confirmation).
 */
const peer = z.string().min(1).max(128).meta({ description: 'a peer id (FED_PEERS)' });
const ids = z.array(z.number().int().positive()).max(10_000).meta({ description: 'row ids' });
const replayBody = z.object({ peer: z.string().optional().meta({ description: 'a peer id (FED_PEERS)' }) }).catchall(z.unknown()).meta({ description: 'optional; without a peer every peer\'s pending rows are replayed' });
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
    c.json(await buildStatusReport({ db, nodeId: config.nodeId, peers: config.federation.peers, queues: operations.queueStatus })),
  );

  app.post(`${ADMIN_PREFIX}/dlq/replay`, documented({ summary: 'Replay pending DLQ rows now', tag: 'admin', access: 'admin', body: { schema: replayBody, required: false }, responses: { 202: { description: 'replay requested', schema: looseObject({ requested: z.literal(true), peer: z.string().nullable() }) } }, errors: merge(JSON_BODY_CODES, { 400: ['INVALID_BODY', 'UNKNOWN_PEER'] }) }), async (c) => {
    const raw = await readOptionalJson(c, config.limits.maxBodyBytes);
    const body = checkBody(replayBody, raw, () => objectBody(raw));
    const peer = typeof body.peer === 'string' ? body.peer : undefined;
    if (peer !== undefined && !config.federation.peers.some((p) => p.id === peer)) throw badRequest('UNKNOWN_PEER', `peer ${peer} is not configured`);
    await operations.requestDlqReplay(peer);
    audit.record({ kind: 'dlq.operator', actor: actorOf(c), details: { action: 'replay', peer: peer ?? null } });
    return c.json({ requested: true, peer: peer ?? null }, 202);
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
    const r = await reapplyRefusals({ db, policy, metrics, audit, logger, clockSkewMs: config.federation.clockSkewMs, memoryMaxBytes: config.limits.memoryMaxBytes }, { ...(sel.peerId ? { peerId: sel.peerId } : {}), ...(sel.ids ? { ids: sel.ids } : {}) });
    audit.record({ kind: 'catchup.operator', actor: actorOf(c), details: { action: 'reapply', selector: sel, ...r } });
    return c.json(r);
  });

  return app;
}
