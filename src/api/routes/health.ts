import { Hono } from 'hono';
import { federationEnabled } from '../../config.js';
import { SERVICE_NAME, VERSION } from '../../version.js';
import type { AppDeps } from '../deps.js';

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
export function healthRoutes(deps: Pick<AppDeps, 'config' | 'probes' | 'logger'>) {
  const app = new Hono();
  app.get('/api/v1/health', (c) =>
    c.json({ status: 'ok', service: SERVICE_NAME, version: VERSION, node_id: deps.config.nodeId, federation_enabled: federationEnabled(deps.config) }),
  );
  app.get('/api/v1/ready', async (c) => {
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
