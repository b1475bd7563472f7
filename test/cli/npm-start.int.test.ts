import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, freePort, waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { waitHealthy } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';

// `npm start` is what the README shows: stopping npm must stop the node gracefully, never
// leave it running re-parented to init.

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let db: TestDatabase;
const prefix = uniquePrefix();

/** The pid listening on a port (to clean up a node that outlived its npm). */
function listener(port: number): number | null {
  const out = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
  const m = /pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : null;
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await dropPrefix(prefix);
});

describe('npm start', () => {
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${sig} to npm stops the node, which shuts down gracefully`, async () => {
      const port = await freePort();
      const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_ID: `npm-start-${sig.toLowerCase()}`, DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: `${prefix}${sig}`, FED_KEY_DIR: newKeyDir(), HTTP_PORT: String(port), WORKER_HTTP_PORT: '0', LOG_LEVEL: 'info' };
      const npm = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      npm.stdout!.on('data', (d) => (out += d));
      npm.stderr!.on('data', (d) => (out += d));
      try {
        await waitHealthy(`http://127.0.0.1:${port}`);
        npm.kill(sig);
        // The node's output still reaches us: it shares npm's pipes.
        await waitFor(async () => listener(port) === null && out.includes('"msg":"stopped"'), { timeoutMs: 20_000, what: 'the node stopped after npm' });
        expect(out).toMatch(sig === 'SIGTERM' ? /"reason":"SIGTERM received","msg":"shutting down"/ : /"reason":"npm \(the parent process\) exited","msg":"shutting down"/);
      } finally {
        const orphan = listener(port);
        if (orphan !== null) process.kill(orphan, 'SIGKILL');
        npm.kill('SIGKILL');
        await dropPrefix(`${prefix}${sig}`);
      }
    }, 60_000);
  }
});
