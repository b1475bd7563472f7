import { createServer, type Server } from 'node:net';

export const PG_ADMIN_URL = process.env.MEMFED_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.MEMFED_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Optional: the nodes test helpers start (test/helpers/node.ts, process-mesh.ts) use a
 * Redis Cluster (MEMFED_TEST_REDIS_CLUSTER_NODES) or Sentinel (MEMFED_TEST_REDIS_SENTINELS,
 * MEMFED_TEST_REDIS_SENTINEL_NAME) instead of REDIS_URL, to run a suite such as the mesh
 * tests on that topology (docs/testing.md). Unset: nothing changes.
 */
export const REDIS_TOPOLOGY_ENV: Record<string, string> = process.env.MEMFED_TEST_REDIS_CLUSTER_NODES
  ? { REDIS_CLUSTER_NODES: process.env.MEMFED_TEST_REDIS_CLUSTER_NODES }
  : process.env.MEMFED_TEST_REDIS_SENTINELS
    ? { REDIS_SENTINELS: process.env.MEMFED_TEST_REDIS_SENTINELS, REDIS_SENTINEL_NAME: process.env.MEMFED_TEST_REDIS_SENTINEL_NAME ?? 'mymaster' }
    : {};

export function dbUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A port free right now on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export const uniqueSuffix = () => `${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;

export async function waitFor<T>(fn: () => Promise<T | undefined | false | null>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** Starts `server` on a free loopback port, never what keeps the test process alive; resolves with the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}
