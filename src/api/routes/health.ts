import { Hono } from 'hono';
import { federationEnabled } from '../../config.js';
import { SERVICE_NAME, VERSION } from '../../version.js';
import { hasPeers, type AppDeps } from '../deps.js';
import { documented } from '../openapi/describe.js';
import { looseObject } from '../openapi/responses.js';
import { z } from 'zod';

const PROBE_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new ProbeTimeout(`timed out after ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

class ProbeTimeout extends Error {}

/**
 * Liveness (never needs the API key) and readiness (Postgres and Redis answer). Both are
 * open, so a failed probe answers in the service's error envelope with one status word
 * per probe (`ok`, `failed`, `timeout`); what failed and why goes to the log only.
 */
export function healthRoutes(deps: Pick<AppDeps, 'config' | 'probes' | 'logger'> & Partial<Pick<AppDeps, 'federation'>>) {
  const app = new Hono();
  const checks = z.record(z.string(), z.enum(['ok', 'failed', 'timeout'])).meta({ description: 'one status word per probe (postgres, redis)' });
  app.get('/api/v1/health', documented({ summary: 'Liveness', tag: 'health', access: 'open', responses: { 200: { description: 'the process is up', schema: looseObject({ status: z.literal('ok'), service: z.string(), version: z.string(), node_id: z.string(), federation_enabled: z.boolean() }) } } }), (c) =>
    c.json({ status: 'ok', service: SERVICE_NAME, version: VERSION, node_id: deps.config.nodeId, federation_enabled: deps.federation ? hasPeers({ config: deps.config, federation: deps.federation }) : federationEnabled(deps.config) }),
  );
  app.get('/api/v1/ready', documented({ summary: 'Readiness: Postgres and Redis answer', tag: 'health', access: 'open', responses: { 200: { description: 'ready', schema: looseObject({ status: z.literal('ready'), checks }) } }, errors: { 503: ['NOT_READY'] } }), async (c) => {
    const checks: Record<string, 'ok' | 'failed' | 'timeout'> = {};
    let ready = true;
    await Promise.all(
      deps.probes.map(async (p) => {
        try {
          await withTimeout(p.check(), PROBE_TIMEOUT_MS);
          checks[p.name] = 'ok';
        } catch (err) {
          ready = false;
          checks[p.name] = err instanceof ProbeTimeout ? 'timeout' : 'failed';
          deps.logger.warn({ probe: p.name, err }, 'readiness probe failed');
        }
      }),
    );
    if (ready) return c.json({ status: 'ready', checks });
    return c.json({ error: 'not ready', code: 'NOT_READY', status: 'not_ready', checks }, 503);
  });
  return app;
}
