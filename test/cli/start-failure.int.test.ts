import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, freePort, waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { spawnMemfed } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

// A start that fails (a port in use) must end the process with exit 1, never leave it
// running half-started (connections open, workers consuming jobs, no port).

let db: TestDatabase;
let blocker: net.Server;
let taken: number;
const prefix = uniquePrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  taken = await freePort();
  blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(taken, '127.0.0.1', () => r()));
});
afterAll(async () => {
  await new Promise((r) => blocker?.close(r));
  await db?.drop();
  await dropPrefix(prefix);
});

const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<string>((r) => setTimeout(() => r('still running'), ms))]);

describe('a start that fails', () => {
  const env = () => ({ NODE_ID: 'start-fails', DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, FED_KEY_DIR: newKeyDir(), LOG_LEVEL: 'info' });

  it('with the API port in use: exits 1 and says which address', async () => {
    const p = spawnMemfed(['api'], { ...env(), HTTP_PORT: String(taken) });
    const code = await within(p.exited, 30_000);
    if (code === 'still running') p.signal('SIGKILL');
    expect(code).toBe(1);
    expect(p.output()).toMatch(new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${taken}`));
  }, 40_000);

  it('with the worker port in use: exits 1 without having started a BullMQ worker', async () => {
    const p = spawnMemfed(['worker'], { ...env(), WORKER_HTTP_PORT: String(taken) });
    const code = await within(p.exited, 30_000);
    if (code === 'still running') p.signal('SIGKILL');
    expect(code).toBe(1);
    expect(p.output()).toMatch(/EADDRINUSE/);
    expect(p.output()).not.toContain('"msg":"worker started"');
  }, 40_000);

  /** The JSON log lines a process wrote on stdout. */
  const logLines = (p: { stdout(): string }) => p.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

  for (const service of ['Postgres', 'Redis'] as const) {
    it(`with ${service} not answering: exits 1 after STARTUP_WAIT_MS with one line naming the URL, password masked, and how to start it`, async () => {
      const closed = await freePort();
      const url = service === 'Postgres' ? `postgres://postgres:s3cret-pw@127.0.0.1:${closed}/memfed` : `redis://:s3cret-pw@127.0.0.1:${closed}`;
      const p = spawnMemfed(['api'], { ...env(), HTTP_PORT: '0', STARTUP_WAIT_MS: '1500', ...(service === 'Postgres' ? { DATABASE_URL: url } : { REDIS_URL: url }) });
      const code = await within(p.exited, 30_000);
      if (code === 'still running') p.signal('SIGKILL');
      expect(code).toBe(1);
      const scheme = service === 'Postgres' ? 'postgres' : 'redis';
      const said = new RegExp(`cannot reach ${service} at ${scheme}://[^ ]*\\*\\*\\*@127\\.0\\.0\\.1:${closed}.*ECONNREFUSED.*README: "Postgres and Redis"`);
      const stderr = p.output().split('\n').filter((l) => l.startsWith('memfed:'));
      expect(stderr).toHaveLength(1);
      expect(stderr[0]).toMatch(said);
      const fatal = logLines(p).filter((l) => l.msg === 'start failed');
      expect(fatal).toHaveLength(1);
      expect(fatal[0]!.level).toBe(60);
      expect(String(fatal[0]!.reason)).toMatch(said);
      expect(logLines(p).some((l) => l.msg === `waiting for ${service}`)).toBe(true);
      // Nothing but JSON lines and that one line: no stack trace, no password.
      expect(p.output()).not.toMatch(/^\s+at /m);
      expect(p.output()).not.toContain('s3cret-pw');
    }, 40_000);
  }

  it('with Redis coming up during STARTUP_WAIT_MS: waits for it and starts', async () => {
    const port = await freePort();
    const p = spawnMemfed(['api'], { ...env(), NODE_ID: 'start-waits', HTTP_PORT: '0', STARTUP_WAIT_MS: '20000', REDIS_URL: `redis://127.0.0.1:${port}` });
    let redis: ReturnType<typeof spawn> | undefined;
    try {
      await waitFor(async () => p.stdout().includes('"msg":"waiting for Redis"'), { timeoutMs: 20_000, what: 'the node waits for Redis' });
      redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      await waitFor(async () => p.stdout().includes('"msg":"api listening"'), { timeoutMs: 20_000, what: 'the api serves once Redis answers' });
      expect(await p.stop()).toBe(0);
    } finally {
      p.signal('SIGKILL');
      redis?.kill('SIGKILL');
    }
  }, 60_000);
});
