import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './env.js';
import { RedisProcess } from './private-cluster.js';

/**
 * A primary, one replica and three sentinels of the test's own (free ports, no
 * persistence), monitoring master `name` with quorum 2 and a one-second down-after, so a
 * killed primary is replaced by its replica within a few seconds.
 */
export class PrivateSentinel {
  primary!: RedisProcess;
  replica!: RedisProcess;
  readonly sentinels: RedisProcess[] = [];
  private dir = '';

  constructor(readonly name = 'mymaster') {}

  /** The list as REDIS_SENTINELS takes it. */
  get addresses(): string {
    return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
  }

  async start(): Promise<this> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'memfed-sentinel-'));
    const server = (port: number, extra: string[] = []) =>
      new RedisProcess(port, ['--port', String(port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no', '--logfile', path.join(this.dir, `${port}.log`), ...extra]);
    const p = await freePort();
    const r = await freePort();
    this.primary = server(p).start();
    this.replica = server(r, ['--replicaof', '127.0.0.1', String(p)]).start();
    await waitFor(() => this.primary.answers(), { what: 'sentinel primary up' });
    await waitFor(async () => /master_link_status:up/.test(await this.replica.query((c) => c.info('replication')).catch(() => '')), { timeoutMs: 20_000, what: 'replica in sync' });
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = path.join(this.dir, `sentinel-${port}.conf`);
      // Sentinel rewrites its config file (what it learned): one each, writable.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${this.dir}`,
          `logfile ${path.join(this.dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${this.name} 127.0.0.1 ${p} 2`,
          `sentinel down-after-milliseconds ${this.name} 1000`,
          `sentinel failover-timeout ${this.name} 5000`,
          `sentinel parallel-syncs ${this.name} 1`,
          '',
        ].join('\n'),
      );
      this.sentinels.push(new RedisProcess(port, [conf, '--sentinel']).start());
    }
    for (const s of this.sentinels) await waitFor(() => s.answers(), { what: `sentinel ${s.port} up` });
    // Every sentinel knows the replica and the other sentinels (else a failover cannot be agreed).
    await waitFor(
      async () => {
        for (const s of this.sentinels) {
          const m = (await s.query((c) => c.call('SENTINEL', 'MASTER', this.name)).catch(() => [])) as string[];
          const field = (k: string) => Number(m[m.indexOf(k) + 1] ?? 0);
          if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'sentinels see the replica and each other' },
    );
    return this;
  }

  /** The port of the primary the sentinels name now. */
  async primaryPort(): Promise<number> {
    for (const s of this.sentinels.filter((x) => x.running)) {
      const addr = (await s.query((c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)).catch(() => null)) as [string, string] | null;
      if (addr) return Number(addr[1]);
    }
    throw new Error('no sentinel answers');
  }

  /** SIGKILLs the primary and waits until the sentinels promoted the replica and it takes writes. */
  async failover(timeoutMs = 30_000): Promise<void> {
    const old = this.primary;
    await old.kill();
    await waitFor(async () => (await this.primaryPort()) === this.replica.port, { timeoutMs, intervalMs: 200, what: 'sentinels promoted the replica' });
    await waitFor(async () => /role:master/.test(await this.replica.query((c) => c.info('replication')).catch(() => '')), { timeoutMs, what: 'replica is primary' });
    [this.primary, this.replica] = [this.replica, old];
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, this.primary, this.replica].filter(Boolean).map((n) => n.kill()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
