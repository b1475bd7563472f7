import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { PG_ADMIN_URL, REDIS_URL, dbUrl, freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir } from '../helpers/node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

let db: TestDatabase;
const prefix = uniquePrefix();
const procs: NodeProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await db?.drop();
  await dropPrefix(prefix);
});

describe('roles as real processes', () => {
  it('runs api and worker as separate processes and stops both cleanly on SIGTERM', async () => {
    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const env = { NODE_ID: 'split-node', DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, FED_KEY_DIR: newKeyDir(), HTTP_PORT: String(apiPort), WORKER_HTTP_PORT: String(workerPort), LOG_LEVEL: 'info' };
    const apiProc = spawnMemfed(['api'], env);
    const workerProc = spawnMemfed(['worker'], env);
    procs.push(apiProc, workerProc);
    await waitHealthy(`http://127.0.0.1:${apiPort}`);
    await waitHealthy(`http://127.0.0.1:${workerPort}`);

    const created = await api(`http://127.0.0.1:${apiPort}`, 'POST', '/api/v1/memories', { title: 'split', content: 'roles' });
    expect(created.status).toBe(201);
    const wm = await api(`http://127.0.0.1:${workerPort}`, 'GET', '/metrics');
    expect(wm.text).toContain('role="worker"');
    // the worker role serves no client API
    expect((await api(`http://127.0.0.1:${workerPort}`, 'GET', '/api/v1/memories')).status).toBe(404);
    expect(apiProc.output()).toContain('api listening');
    expect(workerProc.output()).toContain('"queue":"push","concurrency":8');

    apiProc.signal('SIGTERM');
    workerProc.signal('SIGTERM');
    expect(await apiProc.exited).toBe(0);
    expect(await workerProc.exited).toBe(0);
    expect(workerProc.output()).toContain('"msg":"stopped"');
  }, 120_000);

  it('scales a worker\'s concurrency with one variable and logs every queue\'s setting at start', async () => {
    const env = { NODE_ID: 'scaled', DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: `${prefix}s`, FED_KEY_DIR: newKeyDir(), WORKER_HTTP_PORT: '0', PUSH_CONCURRENCY: '32', CATCHUP_CONCURRENCY: '5', LOG_LEVEL: 'info' };
    const w = spawnMemfed(['worker'], env);
    procs.push(w);
    await waitFor(async () => w.output().includes('"queue":"audit"'), { timeoutMs: 30_000, what: 'workers started' });
    expect(w.output()).toContain('"queue":"push","concurrency":32');
    expect(w.output()).toContain('"queue":"catchup","concurrency":5');
    expect(w.output()).toContain('"queue":"dlq","concurrency":1');
    expect(w.output()).toContain('"queue":"audit","concurrency":1');
    w.signal('SIGTERM');
    expect(await w.exited).toBe(0);
    await dropPrefix(`${prefix}s`);
  });

  it('refuses to start with a readable list of every bad variable', async () => {
    const p = spawnMemfed(['api'], { HTTP_PORT: 'eighty', FED_QUORUM_W: '-1', FED_PEERS: 'oops', DATABASE_URL: db.url });
    procs.push(p);
    expect(await p.exited).toBe(2);
    const out = p.output();
    for (const v of ['HTTP_PORT', 'FED_QUORUM_W', 'FED_PEERS']) expect(out).toContain(v);
  });

  it('keys generate writes raw 32-byte key files in the upstream layout', async () => {
    const dir = newKeyDir();
    const p = spawnMemfed(['keys', 'generate', '--id', 'node-x', '--dir', dir], {});
    expect(await p.exited).toBe(0);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(`${dir}/node-x.priv`).byteLength).toBe(32);
    expect(readFileSync(`${dir}/node-x.pub`).byteLength).toBe(32);
    const again = spawnMemfed(['keys', 'generate', '--id', 'node-x', '--dir', dir], {});
    expect(await again.exited).not.toBe(0);
  });

  it('migrate creates and migrates the database from the CLI', async () => {
    // A name the global teardown also removes (it carries this run's id).
    const name = `memfed_t_${inject('testRun')}_migrate_${process.pid}`;
    const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    const exists = async () => (await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`).length === 1;
    try {
      expect(await exists()).toBe(false);
      const p = spawnMemfed(['migrate'], { DATABASE_URL: dbUrl(name) });
      expect(await p.exited).toBe(0);
      // (stdout may still be flushing when the exit event comes)
      await waitFor(async () => p.output().includes('migrations applied'), { what: 'migrate output' });
      expect(await exists()).toBe(true);
      const created = postgres(dbUrl(name), { max: 1, onnotice: () => {} });
      try {
        const tables = (await created`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`).map((r) => r.tablename);
        for (const t of ['memories', 'change_feed', 'peer_cursors', 'federation_push_dlq', 'audit_log']) expect(tables).toContain(t);
      } finally {
        await created.end();
      }
      // and a second run on the existing database is a no-op that succeeds
      const again = spawnMemfed(['migrate'], { DATABASE_URL: dbUrl(name) });
      expect(await again.exited).toBe(0);
    } finally {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
      await admin.end();
    }
  });
});

describe('role help', () => {
  for (const role of ['api', 'worker', 'all']) {
    it(`memfed ${role} --help prints the usage and exits 0 without starting anything`, async () => {
      const p = spawnMemfed([role, '--help'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', REDIS_URL: 'redis://127.0.0.1:1' });
      expect(await p.exited).toBe(0);
      expect(p.stdout()).toMatch(/^usage: memfed <command>/);
      expect(p.output()).not.toContain('starting memfed');
    });
  }
});
