import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { loadConfig } from '../../src/config.js';
import { createDatabase, type Database } from '../../src/db/client.js';
import { prepareDatabase } from '../../src/db/migrate.js';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { startNode, type RunningNode } from '../../workers/node.js';
import { freePort } from '../helpers/env.js';
import { startRole } from './role-process.js';

export const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface BenchNode {
  id: string;
  url: string;
  dbName: string;
  dbUrl: string;
  prefix: string;
  /** The node in this process, or a `memfed all` process of its own (`pid`). */
  running: Pick<RunningNode, 'close'> & { pid?: number };
  env: Record<string, string>;
}

/**
 * Everything the benchmark creates outside the process: databases named
 * `memfed_bench_<pid>_<n>`, Redis keys under `mfbench_<pid>_*`, temporary key dirs.
 * cleanup() removes all of it (databases WITH (FORCE); Redis by prefix, never a flush).
 */
export class BenchInfra {
  readonly pid = process.pid;
  readonly redisBase = `mfbench_${process.pid}`;
  #dbCounter = 0;
  #prefixCounter = 0;
  readonly #databases: string[] = [];
  readonly #keyDirs: string[] = [];
  readonly #nodes: BenchNode[] = [];
  /** Pools to end before the databases are dropped. */
  readonly #closers: Array<() => Promise<unknown>> = [];

  dbUrl(name: string): string {
    const u = new URL(PG_ADMIN_URL);
    u.pathname = `/${name}`;
    return u.toString();
  }

  /** A fresh name (the database itself is created by prepareDatabase or startNode). */
  newDatabaseName(): string {
    const name = `memfed_bench_${this.pid}_${this.#dbCounter++}`;
    this.#databases.push(name);
    return name;
  }

  /** A created and migrated database with a memfed pool on it. */
  async migratedDatabase(poolMax = 10): Promise<{ name: string; url: string; database: Database }> {
    const name = this.newDatabaseName();
    const url = this.dbUrl(name);
    await prepareDatabase(url);
    const database = createDatabase(url, { max: poolMax });
    this.#closers.push(() => database.close());
    return { name, url, database };
  }

  /** A BullMQ / memfed prefix no one else uses. */
  prefix(tag: string): string {
    return `${this.redisBase}_${tag}${this.#prefixCounter++}`;
  }

  keyDir(): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'memfed-bench-keys-'));
    this.#keyDirs.push(dir);
    return dir;
  }

  /** Generates keys for `ids` in `dir` (every node then finds every other's .pub). */
  async enrol(dir: string, ids: string[]): Promise<void> {
    for (const id of ids) await ensureOwnKey(dir, id);
  }

  /**
   * A `memfed all` node: in this process via startNode(loadConfig(env)), or with
   * `ownProcess` a process of its own (as a peer is in a real mesh: its own event loop and
   * core, and its CPU not counted as this process's).
   */
  async startNode(opts: { id: string; keyDir: string; peers?: BenchNode[]; env?: Record<string, string>; dbName?: string; prefix?: string; port?: number; ownProcess?: boolean }): Promise<BenchNode> {
    const port = opts.port ?? (await freePort());
    const dbName = opts.dbName ?? this.newDatabaseName();
    const prefix = opts.prefix ?? this.prefix(opts.id.replace(/[^A-Za-z0-9]/g, ''));
    const env: Record<string, string> = {
      NODE_ID: opts.id,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(port),
      WORKER_HTTP_PORT: '0',
      DATABASE_URL: this.dbUrl(dbName),
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      FED_KEY_DIR: opts.keyDir,
      FED_PEERS: (opts.peers ?? []).map((p) => `${p.id}=${p.url}`).join(','),
      LOG_LEVEL: 'silent',
      SHUTDOWN_GRACE_MS: '2000',
      ...opts.env,
    };
    let running: BenchNode['running'];
    let url = `http://127.0.0.1:${port}`;
    if (opts.ownProcess) {
      await prepareDatabase(this.dbUrl(dbName));
      const proc = await startRole('all', { ...env, LOG_LEVEL: 'warn' }, port);
      running = { close: () => proc.stop(), ...(proc.proc.pid !== undefined ? { pid: proc.proc.pid } : {}) };
    } else {
      const node = await startNode('all', loadConfig(env));
      running = node;
      url = node.apiUrl ?? url;
    }
    const node: BenchNode = { id: opts.id, url, dbName, dbUrl: this.dbUrl(dbName), prefix, running, env };
    this.#nodes.push(node);
    return node;
  }

  async stopNode(node: BenchNode): Promise<void> {
    const i = this.#nodes.indexOf(node);
    if (i < 0) return;
    this.#nodes.splice(i, 1);
    await node.running.close();
  }

  /** A plain postgres.js pool (for counting rows, raw baselines). */
  rawSql(url: string, max = 10): postgres.Sql {
    const sql = postgres(url, { max, onnotice: () => {}, connection: { TimeZone: 'UTC' } });
    this.#closers.push(() => sql.end({ timeout: 5 }));
    return sql;
  }

  /**
   * After each section: its nodes stopped and its pools ended, so a later section starts
   * with the server's connections free (one Postgres serves every database here).
   * Databases, prefixes and key dirs stay until cleanup().
   */
  async endSection(): Promise<string[]> {
    const problems: string[] = [];
    for (const n of this.#nodes.splice(0)) await n.running.close().catch((e: unknown) => problems.push(`node ${n.id}: ${String(e)}`));
    for (const close of this.#closers.splice(0)) await close().catch(() => {});
    return problems;
  }

  async cleanup(): Promise<string[]> {
    const problems = await this.endSection();
    const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      for (const name of this.#databases.splice(0)) {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch((e: unknown) => problems.push(`drop ${name}: ${String(e)}`));
      }
    } finally {
      await admin.end({ timeout: 5 });
    }
    const deleted = await deleteRedisKeys(`${this.redisBase}_*`).catch((e: unknown) => {
      problems.push(`redis cleanup: ${String(e)}`);
      return 0;
    });
    for (const dir of this.#keyDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    if (deleted > 0) process.stdout.write(`cleanup: deleted ${deleted} Redis keys under ${this.redisBase}_*\n`);
    return problems;
  }
}

/** Deletes keys matching `pattern` with SCAN + UNLINK (never FLUSH*). */
export async function deleteRedisKeys(pattern: string): Promise<number> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  let n = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 2000);
      cursor = next;
      if (keys.length) n += await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return n;
}

/** Sums a Prometheus counter/histogram series over the lines whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

export async function scrape(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`);
  return res.text();
}
