import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './env.js';
import { StableFront } from './stable-front.js';

/**
 * A Redis of the test's own, with no persistence, that the test may stop and restart
 * (every key gone) without touching the shared one. Its address (`url`, `port`) stays the
 * same across restarts: it is a stable front port; each start runs redis-server on a
 * fresh port behind it, so a restart never re-binds a port it just released.
 */
export class PrivateRedis {
  private proc: ChildProcess | null = null;
  private front: StableFront | null = null;
  port = 0;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The running redis-server's pid (a restart gives a new one). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<this> {
    if (!this.front) {
      this.front = await new StableFront().start();
      this.port = this.front.port;
    }
    const backend = await freePort();
    this.proc = spawn('redis-server', ['--port', String(backend), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor(async () => {
      const r = new Redis(`redis://127.0.0.1:${backend}`, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
      r.on('error', () => {});
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    }, { what: 'private redis up' });
    this.front!.retarget(backend);
    return this;
  }

  async stop(): Promise<void> {
    this.front?.retarget(null);
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    this.proc = null;
  }
}
