import { Hono } from 'hono';
import { verifyStoredChain } from '../../audit/verify.js';
import { badRequest } from '../../errors.js';
import { auditHead, listCheckpoints } from '../../store/audit.js';
import type { AppDeps } from '../deps.js';
import { ADMIN_PREFIX } from './admin.js';

function seqParam(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,15}$/.test(raw)) throw badRequest('INVALID_QUERY', `${name} must be a non-negative integer`, { field: name });
  return Number(raw);
}

/** Signed checkpoints for peers (they keep them so truncation and rewrites show). */
export function auditRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get('/api/v1/audit/head', async (c) => c.json({ node_id: deps.config.nodeId, head: await auditHead(deps.database.db) }));
  app.get('/api/v1/audit/checkpoints', async (c) => {
    const after = seqParam(c.req.query('after'), 'after', 0);
    const checkpoints = await listCheckpoints(deps.database.db, after, 1000);
    return c.json({ node_id: deps.config.nodeId, checkpoints });
  });
  return app;
}

/** Admin: verify the chain (same walk as `memfed audit verify`). */
export function auditAdminRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get(`${ADMIN_PREFIX}/audit/verify`, async (c) => {
    const from = seqParam(c.req.query('from'), 'from', 1);
    if (from < 1) throw badRequest('INVALID_QUERY', 'from must be at least 1', { field: 'from' });
    const result = await verifyStoredChain(deps.database.db, { nodeId: deps.config.nodeId, keys: deps.auditKeys, from });
    return c.json(result, result.ok ? 200 : 409);
  });
  return app;
}
