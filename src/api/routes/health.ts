import { Hono } from 'hono';
import { federationEnabled } from '../../config.js';
import { SERVICE_NAME, VERSION } from '../../version.js';
import type { AppDeps } from '../deps.js';

const PROBE_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

/** Liveness (never needs the API key) and readiness (Postgres and Redis answer). */
export function healthRoutes(deps: Pick<AppDeps, 'config' | 'probes'>) {
  const app = new Hono();
  app.get('/api/v1/health', (c) =>
    c.json({ status: 'ok', service: SERVICE_NAME, version: VERSION, node_id: deps.config.nodeId, federation_enabled: federationEnabled(deps.config) }),
  );
  app.get('/api/v1/ready', async (c) => {
    const checks: Record<string, string> = {};
    let ready = true;
    await Promise.all(
      deps.probes.map(async (p) => {
        try {
          await withTimeout(p.check(), PROBE_TIMEOUT_MS);
          checks[p.name] = 'ok';
        } catch (err) {
          ready = false;
          checks[p.name] = `error: ${(err as Error).message.slice(0, 200)}`;
        }
      }),
    );
    return c.json({ status: ready ? 'ready' : 'not_ready', checks }, ready ? 200 : 503);
  });
  return app;
}
