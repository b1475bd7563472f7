import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { startNode, type Role, type RunningNode } from '../../workers/node.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { REDIS_TOPOLOGY_ENV, REDIS_URL, freePort } from './env.js';
import { dropPrefix, uniquePrefix } from './redis.js';

export const newKeyDir = () => mkdtempSync(path.join(tmpdir(), 'memfed-keys-'));

export interface TestNode {
  id: string;
  url: string;
  port: number;
  db: TestDatabase;
  prefix: string;
  node: RunningNode;
  env: Record<string, string>;
  stop(): Promise<void>;
  /** Stops and removes the node's database and Redis keys. */
  destroy(): Promise<void>;
}

export interface TestNodeOptions {
  id?: string;
  role?: Role;
  port?: number;
  keyDir?: string;
  peers?: Array<{ id: string; url: string; flavour?: string }>;
  env?: Record<string, string>;
  db?: TestDatabase;
  prefix?: string;
}

/** An in-process node on a real port with its own database and queue prefix. */
export async function startTestNode(opts: TestNodeOptions = {}): Promise<TestNode> {
  const id = opts.id ?? `node-${Math.random().toString(36).slice(2, 8)}`;
  const port = opts.port ?? (await freePort());
  const db = opts.db ?? (await createTestDatabase());
  const prefix = opts.prefix ?? uniquePrefix();
  const env: Record<string, string> = {
    NODE_ID: id,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(port),
    WORKER_HTTP_PORT: '0',
    DATABASE_URL: db.url,
    DATABASE_POOL_MAX: '5',
    REDIS_URL,
    ...REDIS_TOPOLOGY_ENV,
    QUEUE_PREFIX: prefix,
    FED_KEY_DIR: opts.keyDir ?? newKeyDir(),
    FED_PEERS: (opts.peers ?? []).map((p) => `${p.id}=${p.url}${p.flavour ? `;flavour=${p.flavour}` : ''}`).join(','),
    RECONCILE_INTERVAL_MS: '500',
    LOG_LEVEL: process.env.MEMFED_TEST_LOG_LEVEL ?? 'silent',
    SHUTDOWN_GRACE_MS: '2000',
    ...opts.env,
  };
  const node = await startNode(opts.role ?? 'all', loadConfig(env));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await node.close();
  };
  return {
    id,
    url: node.apiUrl ?? `http://127.0.0.1:${port}`,
    port,
    db,
    prefix,
    node,
    env,
    stop,
    async destroy() {
      await stop();
      await db.drop();
      await dropPrefix(prefix);
    },
  };
}

/** JSON request helper that never throws on HTTP status. */
export async function api(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? (body as string) : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}
