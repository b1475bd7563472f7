import postgres from 'postgres';
import { loadConfig } from '../../src/config.js';
import type { Sql } from '../../src/db/client.js';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { startNode, type RunningNode } from '../../workers/node.js';
import type { NodeView } from './checker.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { REDIS_URL, freePort, waitFor } from './env.js';
import { FaultProxy, type ProxyMode } from './fault-proxy.js';
import { newKeyDir } from './node.js';
import { spawnMemfed, waitHealthy, type NodeProcess } from './process.js';
import { dropPrefix, uniquePrefix } from './redis.js';

/*
 * A federation cluster for the fault campaign: N nodes (in-process, or real processes
 * with `all` or separate `api` / `worker` roles), each with its own database and queue
 * prefix, every directed link X->Y going through its own FaultProxy (so a fault can cut
 * one direction, isolate one node, or slow one peer without touching the others).
 * Clients talk to nodes directly (node.url); only node-to-node traffic is proxied.
 */

export type NodeMode = 'inproc' | 'process';
export type ProcessRole = 'api' | 'worker' | 'all';

export interface ChaosNodeSpec {
  id: string;
  mode?: NodeMode;
  /** Process mode: run `api` and `worker` as two processes instead of one `all`. */
  split?: boolean;
  env?: Record<string, string>;
  /** Start with the cluster (default true). */
  autostart?: boolean;
  /** This node's Redis (default the cluster's). */
  redisUrl?: string;
  /** This node's database, made by the caller (default a fresh one on the shared server); dropped with the cluster. */
  db?: TestDatabase;
}

export interface ChaosClusterOptions {
  nodes: Array<string | ChaosNodeSpec>;
  mode?: NodeMode;
  /** Put a FaultProxy on every directed link (default true). */
  proxied?: boolean;
  /** Environment for every node (after the defaults, before the node's own). */
  env?: Record<string, string>;
  /** Redis for every node (default the shared test Redis, with a unique prefix per node). */
  redisUrl?: string;
  /** Peers outside the cluster, per node id (e.g. an ai-memory-style receiver). */
  externalPeers?: Record<string, Array<{ id: string; url: string }>>;
  keyDir?: string;
  seed?: number;
}

export interface RoleProcess {
  role: ProcessRole;
  name: string;
  proc: NodeProcess;
  /** The worker's /metrics + health port (worker role), else 0. */
  opsPort: number;
  env: Record<string, string>;
}

/** application_name of the checker's own connections: a fault that kills a node's backends spares its observer. */
export const CHECKER_APP_NAME = 'memfed-checker';

export class ChaosNode {
  inproc: RunningNode | null = null;
  private observer: Sql | null = null;
  readonly procs: RoleProcess[] = [];
  private spawned = 0;

  constructor(
    readonly id: string,
    readonly mode: NodeMode,
    readonly split: boolean,
    readonly port: number,
    readonly db: TestDatabase,
    readonly prefix: string,
    readonly env: Record<string, string>,
    readonly peerIds: string[],
    /** The node's Redis is the shared one (its prefix is dropped at the end). */
    readonly sharedRedis = true,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the node the way its spec says (in-process `all`, or its processes). */
  async start(): Promise<void> {
    if (this.mode === 'inproc') {
      if (this.inproc) return;
      this.inproc = await startNode('all', loadConfig(this.env));
      return;
    }
    if (this.split) {
      await this.spawn('api');
      await this.spawn('worker');
    } else await this.spawn('all');
  }

  /** Process mode: one more process of a role, with extra env; waits until it is ready. */
  async spawn(role: ProcessRole, extraEnv: Record<string, string> = {}, opts: { name?: string; wait?: boolean } = {}): Promise<RoleProcess> {
    if (this.mode !== 'process') throw new Error(`${this.id} is an in-process node`);
    const opsPort = role === 'worker' ? await freePort() : 0;
    const env = { ...this.env, ...(role === 'worker' ? { WORKER_HTTP_PORT: String(opsPort) } : {}), ...extraEnv };
    const rp: RoleProcess = { role, name: opts.name ?? `${this.id}-${role}-${++this.spawned}`, proc: spawnMemfed([role], env), opsPort, env };
    this.procs.push(rp);
    if (opts.wait !== false) {
      const url = role === 'worker' ? `http://127.0.0.1:${opsPort}` : this.url;
      await Promise.race([
        waitHealthy(url, 45_000),
        rp.proc.exited.then((code) => {
          throw new Error(`${rp.name} exited (${code}) before it was ready:\n${rp.proc.output().slice(-3000)}`);
        }),
      ]);
    }
    return rp;
  }

  /** Live processes of a role. */
  running(role?: ProcessRole): RoleProcess[] {
    return this.procs.filter((p) => p.proc.proc.exitCode === null && p.proc.proc.signalCode === null && (role === undefined || p.role === role));
  }

  /** SIGKILL a process and wait for it to be gone. */
  async kill(rp: RoleProcess): Promise<void> {
    rp.proc.signal('SIGCONT');
    rp.proc.signal('SIGKILL');
    await rp.proc.exited;
  }

  async stop(): Promise<void> {
    if (this.inproc) {
      const n = this.inproc;
      this.inproc = null;
      await n.close();
    }
    await Promise.all(this.procs.map((p) => p.proc.stop()));
  }

  /** The last lines of every process's output (diagnostics on failure). */
  logs(maxChars = 4000): string {
    return this.procs.map((p) => `--- ${p.name}\n${p.proc.output().slice(-maxChars)}`).join('\n');
  }

  /** The checker's view, on a pool of its own (application_name CHECKER_APP_NAME, UTC like memfed's). */
  view(): NodeView {
    this.observer ??= postgres(this.db.url, { max: 2, connection: { TimeZone: 'UTC', application_name: CHECKER_APP_NAME }, onnotice: () => {}, idle_timeout: 30, connect_timeout: 10 });
    return { kind: 'memfed', id: this.id, sql: this.observer, peers: this.peerIds };
  }

  async closeObserver(): Promise<void> {
    const o = this.observer;
    this.observer = null;
    await o?.end({ timeout: 5 }).catch(() => {});
  }
}

export class ChaosCluster {
  readonly nodes: ChaosNode[] = [];
  private readonly links = new Map<string, FaultProxy>();

  private constructor(readonly keyDir: string) {}

  static async create(opts: ChaosClusterOptions): Promise<ChaosCluster> {
    const keyDir = opts.keyDir ?? newKeyDir();
    const redisUrl = opts.redisUrl ?? REDIS_URL;
    const cluster = new ChaosCluster(keyDir);
    try {
      const specs = opts.nodes.map((n) => (typeof n === 'string' ? { id: n } : n));
      const ports = new Map<string, number>();
      for (const s of specs) {
        ports.set(s.id, await freePort());
        await ensureOwnKey(keyDir, s.id);
      }
      const proxied = opts.proxied ?? true;
      let seed = opts.seed ?? 1;
      if (proxied) {
        for (const from of specs) {
          for (const to of specs) {
            if (from.id === to.id) continue;
            const p = await new FaultProxy({ port: ports.get(to.id)! }, { seed: seed++, name: `${from.id}->${to.id}` }).start();
            cluster.links.set(`${from.id}->${to.id}`, p);
          }
        }
      }
      for (const s of specs) {
        const db = s.db ?? (await createTestDatabase());
        const nodeRedis = s.redisUrl ?? redisUrl;
        const prefix = uniquePrefix();
        const peers = [
          ...specs.filter((p) => p.id !== s.id).map((p) => ({ id: p.id, url: proxied ? cluster.links.get(`${s.id}->${p.id}`)!.url : `http://127.0.0.1:${ports.get(p.id)}` })),
          ...(opts.externalPeers?.[s.id] ?? []),
        ];
        const mode = s.mode ?? opts.mode ?? 'inproc';
        const env: Record<string, string> = {
          NODE_ID: s.id,
          HTTP_HOST: '127.0.0.1',
          HTTP_PORT: String(ports.get(s.id)),
          WORKER_HTTP_PORT: '0',
          DATABASE_URL: db.url,
          DATABASE_POOL_MAX: '5',
          REDIS_URL: nodeRedis,
          QUEUE_PREFIX: prefix,
          FED_KEY_DIR: keyDir,
          FED_PEERS: peers.map((p) => `${p.id}=${p.url}`).join(','),
          RECONCILE_INTERVAL_MS: '500',
          CATCHUP_INTERVAL_MS: '2000',
          FED_REQUEST_TIMEOUT_MS: '2000',
          FED_ACK_TIMEOUT_MS: '1500',
          LOG_LEVEL: process.env.MEMFED_TEST_LOG_LEVEL ?? (mode === 'process' ? 'warn' : 'silent'),
          SHUTDOWN_GRACE_MS: '2000',
          ...opts.env,
          ...s.env,
        };
        cluster.nodes.push(new ChaosNode(s.id, mode, s.split ?? false, ports.get(s.id)!, db, prefix, env, peers.map((p) => p.id), nodeRedis === REDIS_URL));
      }
      await Promise.all(cluster.nodes.filter((_, i) => specs[i]!.autostart !== false).map((n) => n.start()));
      return cluster;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  node(id: string): ChaosNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The proxy on the directed link from -> to. */
  link(from: string, to: string): FaultProxy {
    const p = this.links.get(`${from}->${to}`);
    if (!p) throw new Error(`no proxied link ${from}->${to}`);
    return p;
  }

  /** Links into a node (its peers pushing to it, pulling from it). */
  linksInto(id: string): FaultProxy[] {
    return [...this.links.entries()].filter(([k]) => k.endsWith(`->${id}`)).map(([, p]) => p);
  }

  /** Links into and out of a node: the node's whole network. */
  linksOf(id: string): FaultProxy[] {
    return [...this.links.entries()].filter(([k]) => k.startsWith(`${id}->`) || k.endsWith(`->${id}`)).map(([, p]) => p);
  }

  allLinks(): FaultProxy[] {
    return [...this.links.values()];
  }

  setMode(links: FaultProxy[], mode: ProxyMode): void {
    for (const l of links) l.setMode(mode);
  }

  views(): NodeView[] {
    return this.nodes.map((n) => n.view());
  }

  logs(): string {
    return this.nodes.map((n) => n.logs()).join('\n');
  }

  /** Waits until every node holds `ids` (helper for setup phases, not the checker). */
  async waitAllHold(ids: string[], timeoutMs = 30_000): Promise<void> {
    for (const n of this.nodes) {
      await waitFor(async () => {
        const r = await n.db.database.sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM memories WHERE id = ANY(${n.db.database.sql.array(ids)}::text[])`;
        return r[0]!.n === ids.length;
      }, { timeoutMs, what: `${n.id} holds ${ids.length} ids` });
    }
  }

  /** Stops every node and proxy, drops the databases and (shared Redis) the prefixes. */
  async destroy(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
    await Promise.allSettled([...this.links.values()].map((p) => p.close()));
    for (const n of this.nodes) {
      await n.closeObserver();
      await n.db.drop().catch(() => {});
      if (n.sharedRedis) await dropPrefix(n.prefix).catch(() => {});
    }
  }
}
