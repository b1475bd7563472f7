import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUE_NAMES } from '../../src/queue-names.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir } from '../helpers/node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from '../helpers/process.js';
import { hasPrometheus, shippedRuleFiles, shortenForWindows, startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { exportedNames, metricNames, ruleExpressions } from '../helpers/promql.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { skipNote } from '../helpers/skip.js';

/*
 * One node as separate api and worker processes, with a configured peer that is down.
 * First: every metric the Grafana dashboard and the alert rules name is one the node
 * exports (both roles), and both roles report the live workers per queue. Then a real
 * Prometheus scrapes both roles with the shipped rules (for: shortened to 5 s): writes
 * the peer never acknowledges fire the lag alert, and killing the worker process fires
 * MemfedWorkersDown. The tests run in order and share the processes: the worker is
 * killed last.
 */

const DASHBOARD = fileURLToPath(new URL('../../docs/grafana/memfed-dashboard.json', import.meta.url));
const NODE_ID = 'prom-node';
const PEER_ID = 'down-peer';
/** Series Prometheus itself writes for every target; a dashboard may use them. */
const SCRAPE_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);
const NO_PROMETHEUS = 'prometheus not on PATH (apt-get install prometheus)';

if (!hasPrometheus) {
  console.warn('test/ops/prometheus.int.test.ts: the prometheus binary is not on PATH, so the real-Prometheus alert tests are SKIPPED. Install it with `apt-get install prometheus` (Debian).');
}

let db: TestDatabase;
const prefix = uniquePrefix();
let apiUrl: string;
let workerUrl: string;
let apiProc: NodeProcess;
let workerProc: NodeProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  const [apiPort, workerPort, deadPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    NODE_ID,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(apiPort),
    WORKER_HTTP_PORT: String(workerPort),
    DATABASE_URL: db.url,
    REDIS_URL,
    QUEUE_PREFIX: prefix,
    FED_KEY_DIR: newKeyDir(),
    // Nothing listens there: every push fails transiently and the lag only grows.
    FED_PEERS: `${PEER_ID}=http://127.0.0.1:${deadPort}`,
    LOG_LEVEL: 'warn',
  };
  apiProc = spawnMemfed(['api'], env);
  workerProc = spawnMemfed(['worker'], env);
  apiUrl = `http://127.0.0.1:${apiPort}`;
  workerUrl = `http://127.0.0.1:${workerPort}`;
  try {
    await Promise.all([waitHealthy(apiUrl, 75_000), waitHealthy(workerUrl, 75_000)]);
  } catch (err) {
    throw new Error(`${(err as Error).message}\napi:\n${apiProc.output()}\nworker:\n${workerProc.output()}`);
  }
}, 90_000);

afterAll(async () => {
  await Promise.all([apiProc?.stop(), workerProc?.stop()]);
  await db?.drop();
  await dropPrefix(prefix);
});

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of the sample `name{...labels}` (labels in any order) on a /metrics page. */
function sample(page: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of page.split('\n')) {
    const m = /^([\w:]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Kills the worker process like a crash would (no shutdown, its connections just drop). */
async function killWorker(): Promise<void> {
  workerProc.signal('SIGKILL');
  await workerProc.exited;
}

describe('metric names against a running node (api and worker roles)', () => {
  it('every Grafana dashboard query names only metrics the node exports', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: Array<{ type: string; title: string; targets?: Array<{ refId: string; expr: string }> }>;
      templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
    };
    const queries = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr }))),
      ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query!.query })),
    ];
    expect(queries.length).toBeGreaterThan(20);
    for (const [role, url] of [['api', apiUrl], ['worker', workerUrl]] as const) {
      const exported = exportedNames(await scrape(url));
      const missing = queries.flatMap((q) => metricNames(q.expr).filter((n) => !exported.has(n) && !SCRAPE_SERIES.has(n)).map((n) => `${q.where}: ${n}`));
      expect(missing, `not exported by the ${role} role`).toEqual([]);
    }
  });

  it('every metric the shipped alert rules name is exported by the node', async () => {
    const rules = shippedRuleFiles().flatMap((f) => ruleExpressions(readFileSync(f, 'utf8')));
    expect(rules.length).toBeGreaterThan(10);
    for (const [role, url] of [['api', apiUrl], ['worker', workerUrl]] as const) {
      const exported = exportedNames(await scrape(url));
      const missing = rules.flatMap((r) => metricNames(r.expr).filter((n) => !exported.has(n)).map((n) => `${r.rule}: ${n}`));
      expect(missing, `not exported by the ${role} role`).toEqual([]);
    }
  });

  it('both roles export the live workers per queue: one worker process serves each queue', async () => {
    for (const url of [apiUrl, workerUrl]) {
      const page = await scrape(url);
      for (const queue of QUEUE_NAMES) expect(sample(page, 'memfed_queue_workers', { queue, node: NODE_ID }), `${url} ${queue}`).toBe(1);
    }
  });
});

describe.skipIf(!hasPrometheus)(`a real Prometheus with the shipped rules${skipNote(!hasPrometheus, NO_PROMETHEUS)}`, () => {
  let prom: PrometheusServer;

  beforeAll(async () => {
    prom = await startPrometheus({ targets: [new URL(apiUrl).host, new URL(workerUrl).host], scrapeInterval: '2s', forWindow: '5s' });
  });
  afterAll(async () => {
    await prom?.stop();
  });

  it('loads the shipped rules with only their for: windows shortened', async () => {
    const shipped = shippedRuleFiles().map((f) => readFileSync(f, 'utf8'));
    const shortened = shipped.map((t) => shortenForWindows(t, '5s'));
    for (const [i, text] of shortened.entries()) {
      expect(text.match(/^ +for: .*$/gm)!.every((l) => l.trim() === 'for: 5s')).toBe(true);
      expect(text.replace(/^( +for: ).*$/gm, '$1')).toBe(shipped[i]!.replace(/^( +for: ).*$/gm, '$1'));
    }
    const res = await fetch(`${prom.url}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
    const loaded = body.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name)).toContain('MemfedWorkersDown');
    expect(loaded.map((r) => r.name)).toContain('MemfedPeerPushLagRowsHigh');
  });

  it('fires the push lag alert for a peer that acknowledges nothing while the node takes writes', async () => {
    // Over the shipped threshold of 10000 unacknowledged rows, in bulk requests of 1000.
    for (let b = 0; b < 11; b++) {
      const memories = Array.from({ length: 1000 }, (_, i) => ({ title: `lag ${b}-${i}`, content: 'never acknowledged' }));
      const res = await api(apiUrl, 'POST', '/api/v1/memories/bulk', memories);
      expect(res.status, res.text).toBe(200);
    }
    const started = Date.now();
    const alert = await prom.waitFiring('MemfedPeerPushLagRowsHigh', { node: NODE_ID, peer: PEER_ID }, 45_000);
    expect(alert.labels.severity).toBe('warning');
    console.info(`MemfedPeerPushLagRowsHigh firing ${((Date.now() - started) / 1000).toFixed(1)} s after the writes`);
  }, 90_000);

  it('fires MemfedWorkersDown for every queue once the worker process is killed', async () => {
    const before = await prom.alerts();
    expect(before.filter((a) => a.labels.alertname === 'MemfedWorkersDown'), 'no worker-down alert while the worker runs').toEqual([]);
    const killed = Date.now();
    await killWorker();
    for (const queue of QUEUE_NAMES) {
      const alert = await prom.waitFiring('MemfedWorkersDown', { node: NODE_ID, queue }, 45_000);
      expect(alert.labels.severity).toBe('critical');
    }
    console.info(`MemfedWorkersDown firing for every queue ${((Date.now() - killed) / 1000).toFixed(1)} s after the kill (for: 5s, scrape 2s)`);
  }, 90_000);
});

describe('after the worker process dies', () => {
  it('the API process reports 0 live workers for every queue', async () => {
    if (workerProc.proc.exitCode === null && workerProc.proc.signalCode === null) await killWorker();
    await waitFor(
      async () => {
        const page = await scrape(apiUrl);
        return QUEUE_NAMES.every((queue) => sample(page, 'memfed_queue_workers', { queue, node: NODE_ID }) === 0);
      },
      { timeoutMs: 15_000, what: 'memfed_queue_workers 0 on the api' },
    );
  });
});
