import { Hono } from 'hono';
import { verifyStoredChain } from '../../audit/verify.js';
import { intParam, parseQuery } from '../query.js';
import { auditHead, listCheckpoints } from '../../store/audit.js';
import type { AppDeps } from '../deps.js';
import { ADMIN_PREFIX } from './admin.js';
import { documented } from '../openapi/describe.js';
import { QUERY_CODES } from '../openapi/error-codes.js';
import { looseObject } from '../openapi/responses.js';
import { z } from 'zod';

const seq = (fallback: number, min: number) => intParam({ fallback, min, max: Number.MAX_SAFE_INTEGER, digits: 15, clamp: 'none' });

/** Signed checkpoints for peers (they keep them so truncation and rewrites show). */
export function auditRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get('/api/v1/audit/head', documented({ summary: 'Head of this node\'s audit chain', tag: 'audit', access: 'api-key', responses: { 200: { description: 'the latest sequence and hash', schema: looseObject({ node_id: z.string(), head: z.unknown() }) } } }), async (c) => c.json({ node_id: deps.config.nodeId, head: await auditHead(deps.database.db) }));
  const checkpointsQuery = { after: seq(0, 0) };
  app.get('/api/v1/audit/checkpoints', documented({ summary: 'Signed audit checkpoints after a sequence number', tag: 'audit', access: 'api-key', query: checkpointsQuery, responses: { 200: { description: 'up to 1000 checkpoints', schema: looseObject({ node_id: z.string(), checkpoints: z.array(looseObject()) }) } }, errors: QUERY_CODES }), async (c) => {
    const { after } = parseQuery(c, checkpointsQuery);
    const checkpoints = await listCheckpoints(deps.database.db, after, 1000);
    return c.json({ node_id: deps.config.nodeId, checkpoints });
  });
  return app;
}

/** Admin: verify the chain (same walk as `memfed audit verify`). */
export function auditAdminRoutes(deps: AppDeps) {
  const app = new Hono();
  const verifyQuery = { from: seq(1, 1) };
  const verdict = looseObject({ ok: z.boolean() });
  app.get(`${ADMIN_PREFIX}/audit/verify`, documented({ summary: 'Verify the audit chain', tag: 'admin', access: 'admin', query: verifyQuery, responses: { 200: { description: 'the chain verifies', schema: verdict }, 409: { description: 'the chain is broken (the verdict says where)', schema: verdict } }, errors: QUERY_CODES }), async (c) => {
    const { from } = parseQuery(c, verifyQuery);
    const result = await verifyStoredChain(deps.database.db, { nodeId: deps.config.nodeId, keys: deps.auditKeys, from });
    return c.json(result, result.ok ? 200 : 409);
  });
  return app;
}
