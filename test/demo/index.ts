/**
 * `npm run demo`: three memfed nodes on this machine (local Postgres and Redis, no
 * Docker). Writes memories, stops a peer, shows quorum, a 503, the DLQ and quarantine,
 * catch-up after a crash, and convergence; prints a summary and cleans up after itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { ensureOwnKey } from '../../src/federation/keys.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PG = process.env.DEMO_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS = process.env.DEMO_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN = `${Date.now().toString(36)}${process.pid}`;
const ADMIN = 'demo-admin';

interface DemoNode {
  id: string;
  url: string;
  db: string;
  prefix: string;
  env: Record<string, string>;
  proc: ChildProcess | null;
}

const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n== ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function call(n: DemoNode, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${n.url}${p}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, any>) : {} };
}

function start(n: DemoNode): void {
  n.proc = spawn(process.execPath, [path.join(ROOT, 'workers/memfed.mjs'), 'all'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...n.env }, stdio: 'ignore' });
}

async function ready(n: DemoNode): Promise<void> {
  await until(`${n.id} ready`, async () => (await fetch(`${n.url}/api/v1/ready`)).ok, 30_000);
}

const signal = (n: DemoNode, sig: NodeJS.Signals) => n.proc?.kill(sig);

async function stop(n: DemoNode): Promise<void> {
  const p = n.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGCONT');
  p.kill('SIGTERM');
  await Promise.race([new Promise((r) => p.once('exit', r)), sleep(10_000).then(() => p.kill('SIGKILL'))]);
}

const liveCount = async (n: DemoNode) => {
  const sql = postgres(PG.replace(/\/[^/]*$/, `/${n.db}`), { max: 1, onnotice: () => {} });
  try {
    const [r] = await sql`SELECT count(*)::int AS n FROM memories WHERE deleted_at IS NULL`;
    return r!.n as number;
  } finally {
    await sql.end();
  }
};

async function main(): Promise<void> {
  const keyDir = mkdtempSync(path.join(tmpdir(), 'memfed-demo-keys-'));
  const ids = ['node-a', 'node-b', 'node-c'];
  const ports = await Promise.all(ids.map(() => freePort()));
  for (const id of ids) await ensureOwnKey(keyDir, id);
  const nodes: DemoNode[] = ids.map((id, i) => {
    const db = `memfed_demo_${RUN}_${id.slice(-1)}`;
    const prefix = `mfdemo${RUN}${id.slice(-1)}`;
    return {
      id,
      db,
      prefix,
      url: `http://127.0.0.1:${ports[i]}`,
      proc: null,
      env: {
        NODE_ID: id,
        HTTP_PORT: String(ports[i]),
        WORKER_HTTP_PORT: '0',
        DATABASE_URL: PG.replace(/\/[^/]*$/, `/${db}`),
        REDIS_URL: REDIS,
        QUEUE_PREFIX: prefix,
        FED_KEY_DIR: keyDir,
        FED_PEERS: ids.filter((x) => x !== id).map((x) => `${x}=http://127.0.0.1:${ports[ids.indexOf(x)]}`).join(','),
        FED_QUORUM_W: '2',
        FED_REQUEST_TIMEOUT_MS: '1500',
        ADMIN_TOKEN: ADMIN,
        RECONCILE_INTERVAL_MS: '500',
        CATCHUP_INTERVAL_MS: '2000',
        DLQ_REPLAY_INTERVAL_MS: '1000',
        DLQ_MAX_REPLAY_ATTEMPTS: '3',
        LOG_LEVEL: 'warn',
        // node-c refuses private/** from every sender: such writes dead-letter on the nodes that send them.
        ...(id === 'node-c' ? { GOVERNANCE_POLICY: JSON.stringify({ deny_namespaces: ['private/**'] }) } : {}),
      },
    };
  });
  const [a, b, c] = nodes as [DemoNode, DemoNode, DemoNode];
  const admin = { authorization: `Bearer ${ADMIN}` };
  const summary: string[] = [];
  try {
    step('starting three nodes (W=2)');
    for (const n of nodes) start(n);
    await Promise.all(nodes.map(ready));
    for (const n of nodes) say(`  ${n.id}  ${n.url}  db=${n.db}`);

    step('writing 20 memories on node-a');
    let t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      const r = await call(a, 'POST', '/api/v1/memories', { title: `demo ${i}`, content: `note ${i}`, namespace: 'shared/demo', tags: ['demo'] }, { 'x-agent-id': 'demo-agent' });
      if (i === 0) say(`  first answer: ${r.status} ${JSON.stringify(r.json)}`);
    }
    await until('all nodes hold 20', async () => (await Promise.all(nodes.map(liveCount))).every((x) => x === 20));
    summary.push(`initial 20 writes converged on 3 nodes in ${Date.now() - t0} ms`);
    say(`  converged: ${summary.at(-1)}`);

    step('freezing node-c (SIGSTOP) and writing 10 more on node-b');
    signal(c, 'SIGSTOP');
    const acks: number[] = [];
    for (let i = 0; i < 10; i++) acks.push((await call(b, 'POST', '/api/v1/memories', { title: `while c is frozen ${i}`, content: 'x', namespace: 'shared/demo' })).json.quorum_acks as number);
    say(`  quorum acks per write with node-c frozen: ${acks.join(' ')} (W=2 met by node-a + node-b)`);

    step('freezing node-a too: node-b alone cannot reach W=2');
    signal(a, 'SIGSTOP');
    const lonely = await call(b, 'POST', '/api/v1/memories', { title: 'lonely write', content: 'x', namespace: 'shared/demo' });
    say(`  answer: ${lonely.status} ${JSON.stringify(lonely.json)}  (committed on node-b; delivery continues)`);
    summary.push(`with both peers frozen: ${lonely.status} ${lonely.json.error} (reason ${lonely.json.reason})`);
    signal(a, 'SIGCONT');
    signal(c, 'SIGCONT');
    t0 = Date.now();
    await until('all nodes hold 31', async () => (await Promise.all(nodes.map(liveCount))).every((x) => x === 31), 90_000);
    summary.push(`after unfreezing, every node held all 31 writes within ${Date.now() - t0} ms`);
    say(`  ${summary.at(-1)}`);

    step('node-a writes to a namespace node-c refuses (governance): DLQ and quarantine');
    const priv = await call(a, 'POST', '/api/v1/memories', { id: 'demo-private-1', title: 'private note', content: 'x', namespace: 'private/demo' });
    say(`  write on node-a: ${priv.status}`);
    const q = await until('quarantine', async () => {
      const s = await call(a, 'GET', '/api/v1/admin/dlq/stats', undefined, admin);
      const peer = (s.json.byPeer as Array<{ peerId: string; quarantined: number }>).find((p) => p.peerId === 'node-c');
      return peer && peer.quarantined > 0 ? s.json : undefined;
    }, 60_000);
    say(`  node-a DLQ stats: ${JSON.stringify(q.byPeer)}`);
    summary.push('a row node-c refused landed in the DLQ of the node that sent it and was quarantined after 3 replay attempts');

    step('node-b crashes (SIGKILL); node-a takes 10 writes; node-b restarts and catches up');
    signal(b, 'SIGKILL');
    await sleep(300);
    for (let i = 0; i < 10; i++) await call(a, 'POST', '/api/v1/memories', { title: `while b is down ${i}`, content: 'x', namespace: 'shared/demo' });
    t0 = Date.now();
    start(b);
    await ready(b);
    await until('node-b has 42', async () => (await liveCount(b)) === 42, 60_000);
    await until('node-c has 41', async () => (await liveCount(c)) === 41, 60_000);
    summary.push(`node-b recovered the 10 writes it missed within ${Date.now() - t0} ms of restarting`);
    say(`  ${summary.at(-1)}`);

    step('final state');
    const counts = await Promise.all(nodes.map(liveCount));
    for (const [i, n] of nodes.entries()) {
      const v = await call(n, 'GET', '/api/v1/admin/audit/verify', undefined, admin);
      say(`  ${n.id}: ${counts[i]} memories, audit chain ${v.json.ok ? `ok (${v.json.count} entries)` : `FAILED ${v.json.kind}`}`);
    }
    say('  (node-c has one fewer: the private note it refused, recorded in its audit chain and quarantined in its senders\' DLQs)');
    step('summary');
    for (const line of summary) say(`  - ${line}`);
  } finally {
    step('cleaning up');
    await Promise.all(nodes.map(stop));
    const sql = postgres(PG, { max: 1, onnotice: () => {} });
    for (const n of nodes) await sql.unsafe(`DROP DATABASE IF EXISTS "${n.db}" WITH (FORCE)`).catch(() => {});
    await sql.end();
    const r = new Redis(REDIS);
    for (const n of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${n.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await r.del(...keys);
      } while (cursor !== '0');
    }
    r.disconnect();
    rmSync(keyDir, { recursive: true, force: true });
    say('  done: processes stopped, databases dropped, Redis keys and keys dir removed');
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
