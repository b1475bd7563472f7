import { Hono } from 'hono';
import { verifyStoredChain } from '../../audit/verify.js';
import { intParam, parseQuery } from '../query.js';
import { auditHead, listCheckpoints } from '../../store/audit.js';
import type { AppDeps } from '../deps.js';
import { ADMIN_PREFIX } from './admin.js';

const seq = (fallback: number, min: number) => intParam({ fallback, min, max: Number.MAX_SAFE_INTEGER, digits: 15, clamp: 'none' });

/** Signed checkpoints for peers (they keep them so truncation and rewrites show). */
export function auditRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get('/api/v1/audit/head', async (c) => c.json({ node_id: deps.config.nodeId, head: await auditHead(deps.database.db) }));
  app.get('/api/v1/audit/checkpoints', async (c) => {
    const { after } = parseQuery(c, { after: seq(0, 0) });
    const checkpoints = await listCheckpoints(deps.database.db, after, 1000);
    return c.json({ node_id: deps.config.nodeId, checkpoints });
  });
  return app;
}

/** Admin: verify the chain (same walk as `memfed audit verify`). */
export function auditAdminRoutes(deps: AppDeps) {
  const app = new Hono();
  app.get(`${ADMIN_PREFIX}/audit/verify`, async (c) => {
    const { from } = parseQuery(c, { from: seq(1, 1) });
    const result = await verifyStoredChain(deps.database.db, { nodeId: deps.config.nodeId, keys: deps.auditKeys, from });
    return c.json(result, result.ok ? 200 : 409);
  });
  return app;
}
