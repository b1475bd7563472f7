import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, freePort } from '../helpers/env.js';
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
});
