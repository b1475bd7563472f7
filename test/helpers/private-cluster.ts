import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './env.js';

const run = promisify(execFile);

/** Why the Redis topology tests cannot run here, or null (redis-server and redis-cli present). */
export function redisToolsMissing(): string | null {
  for (const tool of ['redis-server', 'redis-cli']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) return `${tool} not installed`;
  }
  return null;
}

/** One redis-server process of a test topology, killed with the topology. */
export class RedisProcess {
  private proc: ChildProcess | null = null;

  constructor(
    readonly port: number,
    private readonly args: string[],
  ) {}

  start(): this {
    this.proc = spawn('redis-server', this.args, { stdio: 'ignore' });
    return this;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGKILL: no shutdown, no last words to the replicas (a crashed or lost machine). */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** A short-lived client to this process. */
  async query<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    r.on('error', () => {});
    try {
      await r.connect();
      return await fn(r);
    } finally {
      r.disconnect();
    }
  }

  async answers(): Promise<boolean> {
    return this.query(async (r) => (await r.ping()) === 'PONG').catch(() => false);
  }
}

/**
 * A Redis Cluster of the test's own: three primaries and three replicas on free ports
 * (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), no persistence, a
 * short node timeout so a killed primary's replica takes over within a few seconds.
 */
export class PrivateCluster {
  readonly nodes: RedisProcess[] = [];
  private dir = '';

  /** The seed list as REDIS_CLUSTER_NODES takes it. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  async start(opts: { nodeTimeoutMs?: number } = {}): Promise<this> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'memfed-cluster-'));
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      const bus = await freePort();
      this.nodes.push(
        new RedisProcess(port, [
          '--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes', '--cluster-config-file', path.join(this.dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 1500),
          '--dir', this.dir, '--save', '', '--appendonly', 'no', '--logfile', path.join(this.dir, `${port}.log`),
        ]).start(),
      );
    }
    for (const n of this.nodes) await waitFor(() => n.answers(), { what: `cluster node ${n.port} up` });
    await run('redis-cli', ['--cluster', 'create', ...this.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
    await this.waitHealthy();
    // A replica that has not synced with its primary yet refuses to take over (its data
    // counts as too old): a primary killed right after the create would never be replaced.
    for (const n of this.nodes) {
      await waitFor(async () => {
        const info = String(await n.query((r) => r.info('replication')).catch(() => ''));
        return /role:master/.test(info) || /master_link_status:up/.test(info);
      }, { timeoutMs: 20_000, what: `cluster node ${n.port} in sync with its primary` });
    }
    return this;
  }

  /** Every live node reports cluster_state:ok and sees three primaries serving all slots. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        for (const n of this.nodes.filter((x) => x.running)) {
          const info = await n.query((r) => r.cluster('INFO')).catch(() => '');
          if (!/cluster_state:ok/.test(String(info))) return false;
        }
        const owners = await this.slotOwners();
        return owners.length === 3 && owners.every((o) => this.nodes.find((n) => n.port === o)?.running);
      },
      { timeoutMs, intervalMs: 200, what: 'private cluster healthy' },
    );
  }

  /** Ports of the primaries that serve slot ranges, as a live node sees it. */
  async slotOwners(): Promise<number[]> {
    const live = this.nodes.find((n) => n.running);
    const slots = (await live!.query((r) => r.cluster('SLOTS')).catch(() => [])) as unknown as Array<[number, number, [string, number]]>;
    return [...new Set(slots.map((s) => Number(s[2][1])))];
  }

  /** The primary that serves `key`'s slot. */
  async primaryOf(key: string): Promise<RedisProcess> {
    const live = this.nodes.find((n) => n.running)!;
    const slot = Number(await live.query((r) => r.cluster('KEYSLOT', key)));
    const slots = (await live.query((r) => r.cluster('SLOTS'))) as unknown as Array<[number, number, [string, number]]>;
    const range = slots.find((s) => slot >= s[0] && slot <= s[1])!;
    return this.nodes.find((n) => n.port === Number(range[2][1]))!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
