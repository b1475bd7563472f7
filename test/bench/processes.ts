import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { prepareDatabase } from '../../src/db/migrate.js';
import { freePort } from '../helpers/env.js';
import type { BenchContext } from './context.js';
import { memoryInput } from './data.js';
import { load } from './http.js';
import { REDIS_URL } from './infra.js';
import { startRole, type RoleProcess } from './role-process.js';
import { now, until } from './stats.js';

const PEERS = 4;
const BULK = 500;
const ADMIN_TOKEN = 'bench-admin-token';
const CONNECTIONS = 32;

/**
 * Section: does a node go faster with more processes? Each figure is a ratio to the same
 * node with one process, measured in this run:
 * - push delivery to 4 peers at once with 1, 2 and 4 `memfed worker` processes (same
 *   NODE_ID, database and prefix). The peers are stub receivers that acknowledge every row
 *   without storing it, so the figure is memfed's sending side (feed read, batch, sign,
 *   send, cursor), not a receiver's database;
 * - single-memory POSTs against 1 and 2 `memfed api` processes of one node (W=1).
 * On this 2-core machine the processes share the cores with Postgres, Redis and the load
 * generator: the ratios say how far the work spreads, not what more cores would give.
 */
export async function processesSection(ctx: BenchContext): Promise<void> {
  await workerScaling(ctx);
  await apiScaling(ctx);
}

async function workerScaling(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const rows = ctx.size(24_000, 6_000);
  const stubs = await Promise.all(Array.from({ length: PEERS }, (_, i) => stubPeer(`bench-stub-${i}`)));
  const url = infra.dbUrl(infra.newDatabaseName());
  await prepareDatabase(url);
  const apiPort = await freePort();
  const env = {
    NODE_ID: 'bench-procs',
    HTTP_HOST: '127.0.0.1',
    DATABASE_URL: url,
    REDIS_URL,
    QUEUE_PREFIX: infra.prefix('procs'),
    FED_KEY_DIR: infra.keyDir(),
    FED_PEERS: stubs.map((s) => `${s.id}=${s.url}`).join(','),
    ADMIN_TOKEN,
    LOG_LEVEL: 'warn',
    SHUTDOWN_GRACE_MS: '2000',
    // Pulls from the stubs would only add noise.
    CATCHUP_INTERVAL_MS: '3600000',
  };
  const api = await startRole('api', { ...env, HTTP_PORT: String(apiPort) }, apiPort);
  const base = `http://127.0.0.1:${apiPort}`;
  const admin = (p: string) => fetch(`${base}/api/v1/admin${p}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }).then(async (r) => {
    if (!r.ok) throw new Error(`POST ${p}: ${r.status} ${await r.text()}`);
  });
  const setAll = (action: 'pause' | 'resume') => Promise.all(stubs.map((s) => admin(`/peers/${s.id}/${action}`)));
  const workers: RoleProcess[] = [];
  try {
    // The rows are written while every peer is paused: they wait in the change feed.
    await setAll('pause');
    for (let off = 0; off < rows; off += BULK) {
      const n = Math.min(BULK, rows - off);
      const res = await fetch(`${base}/api/v1/memories/bulk`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(Array.from({ length: n }, (_, i) => memoryInput(off + i))) });
      if (res.status !== 200) throw new Error(`bulk POST: ${res.status} ${(await res.text()).slice(0, 300)}`);
    }
    const sql = infra.rawSql(url, 1);
    const rates: Record<number, number> = {};
    for (const k of [1, 2, 4]) {
      // k workers start while the peers are paused; the clock starts at the resume.
      for (let i = 0; i < k; i++) {
        const port = await freePort();
        workers.push(await startRole('worker', { ...env, WORKER_HTTP_PORT: String(port) }, port));
      }
      await sql`UPDATE peer_cursors SET txid = '0'::xid8, seq = 0`;
      for (const s of stubs) s.received = 0;
      const t0 = now();
      await setAll('resume');
      await until(async () => stubs.every((s) => s.received >= rows), `${k} worker(s) to deliver ${rows} rows to each of ${PEERS} peers`, 300_000, 20);
      rates[k] = (PEERS * rows * 1000) / (now() - t0);
      await setAll('pause');
      for (const w of workers.splice(0)) await w.stop();
    }
    for (const k of [2, 4]) {
      report.add({ metric: `push delivery to ${PEERS} peers, ${k} worker processes`, value: rates[k]!, unit: 'rows/s', baselineLabel: '1 worker process', baseline: rates[1]! });
    }
    report.note(`worker scaling: ${rows} rows to each of ${PEERS} stub peers (${BULK}-row batches); 1 worker ${Math.round(rates[1]!)} rows/s, 2 workers ${Math.round(rates[2]!)}, 4 workers ${Math.round(rates[4]!)} (PUSH_CONCURRENCY ${8} per process)`);
  } finally {
    for (const w of workers) await w.stop();
    await api.stop();
    for (const s of stubs) await s.close();
  }
}

async function apiScaling(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const seconds = ctx.size(8, 3);
  const url = infra.dbUrl(infra.newDatabaseName());
  await prepareDatabase(url);
  const env = { NODE_ID: 'bench-apis', HTTP_HOST: '127.0.0.1', DATABASE_URL: url, REDIS_URL, QUEUE_PREFIX: infra.prefix('apis'), FED_KEY_DIR: infra.keyDir(), LOG_LEVEL: 'warn' };
  const ports = [await freePort(), await freePort()];
  const apis = await Promise.all(ports.map((p) => startRole('api', { ...env, HTTP_PORT: String(p) }, p)));
  try {
    const targets = ports.map((p) => `http://127.0.0.1:${p}/api/v1/memories`);
    // Warm-up of both processes (JIT, pools, prepared statements).
    await Promise.all(targets.map((t) => load(t, 2, { connections: CONNECTIONS / 2 })));
    const one = await load(targets[0]!, seconds, { connections: CONNECTIONS });
    const two = await Promise.all(targets.map((t) => load(t, seconds, { connections: CONNECTIONS / 2 })));
    const twoRate = two.reduce((a, r) => a + r.rate, 0);
    report.add({ metric: `POST /memories, W=1, 2 API processes (${CONNECTIONS / 2} connections each)`, value: twoRate, unit: 'writes/s', baselineLabel: `1 API process, ${CONNECTIONS} connections`, baseline: one.rate });
    const bad = one.non2xx + one.errors + two.reduce((a, r) => a + r.non2xx + r.errors, 0);
    report.note(`api scaling: 1 process ${Math.round(one.rate)} writes/s (p99 ${one.p99} ms), 2 processes ${Math.round(twoRate)} writes/s (p99 ${two.map((r) => r.p99).join('/')} ms)`);
    if (bad > 0) throw new Error(`the write path answered ${bad} non-2xx or errors`);
  } finally {
    for (const a of apis) await a.stop();
  }
}

interface StubPeer {
  id: string;
  url: string;
  /** Memories received since the counter was last reset. */
  received: number;
  close(): Promise<void>;
}

/** A peer that acknowledges every pushed row as applied (it stores nothing) and serves an empty feed. */
async function stubPeer(id: string): Promise<StubPeer> {
  const stub: StubPeer = { id, url: '', received: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && req.url?.startsWith('/api/v1/sync/push')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { memories?: unknown[]; tombstones?: unknown[] };
        const applied = body.memories?.length ?? 0;
        stub.received += applied;
        res.end(JSON.stringify({ applied, deleted: body.tombstones?.length ?? 0, noop: 0, skipped: 0, receiver_agent_id: id }));
        return;
      }
      res.end(JSON.stringify({ memories: [], count: 0 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.close = () => new Promise<void>((r) => server.close(() => r()));
  return stub;
}
