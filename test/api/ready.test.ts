import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createOpsApp } from '../../src/api/app.js';
import { createMetrics } from '../../src/metrics.js';

function opsApp(probes: Array<{ name: string; check(): Promise<void> }>) {
  const lines: string[] = [];
  const logger = createLogger('info', {}, { destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
  const app = createOpsApp({ config: loadConfig({ NODE_ID: 'ready-node' }), probes, metrics: createMetrics({ nodeId: 'ready-node', role: 'worker', defaultMetrics: false }), logger });
  return { app, log: () => lines.join('') };
}

describe('/api/v1/ready', () => {
  it('answers 200 with a status word per probe when every probe passes', async () => {
    const { app } = opsApp([{ name: 'postgres', check: async () => {} }]);
    const res = await app.request('/api/v1/ready');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { postgres: 'ok' } });
  });

  it('a failed probe answers 503 in the error envelope with status words only; the detail goes to the log', async () => {
    const detail = 'connect ECONNREFUSED 10.1.2.3:5432 (postgres://app:hunter2@db-internal/memfed)';
    const { app, log } = opsApp([
      { name: 'postgres', check: async () => Promise.reject(new Error(detail)) },
      { name: 'redis', check: async () => {} },
    ]);
    const res = await app.request('/api/v1/ready');
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: 'not ready', code: 'NOT_READY', status: 'not_ready', checks: { postgres: 'failed', redis: 'ok' } });
    for (const leak of ['ECONNREFUSED', '10.1.2.3', 'db-internal', 'hunter2']) expect(text).not.toContain(leak);
    expect(log()).toContain('readiness probe failed');
    expect(log()).toContain('ECONNREFUSED 10.1.2.3');
    expect(log()).not.toContain('hunter2');
  });
});
