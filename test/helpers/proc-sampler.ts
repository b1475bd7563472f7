import { appendFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import type { ResourceSample } from './growth.js';

/** RSS (kB) and open fd count of a live process, from /proc; null once it is gone. */
export async function readProc(pid: number): Promise<{ rssKb: number; fds: number } | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!m) return null; // a zombie has no VmRSS
    const fds = (await readdir(`/proc/${pid}/fd`)).length;
    return { rssKb: Number(m[1]), fds };
  } catch {
    return null;
  }
}

/**
 * Samples every tracked process every `intervalMs` into one series per (name, pid): a
 * process restarted by a fault starts a new series. Each sample is appended to `out` as a
 * JSON line when given.
 */
export class ProcSampler {
  readonly series = new Map<string, ResourceSample[]>();
  private readonly tracked = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly t0 = Date.now();
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly out?: string) {}

  /** Tracks `pid` as `name`; a new pid under an old name becomes `name#2`, `name#3`, ... */
  track(name: string, pid: number | undefined): void {
    if (!pid) return;
    let key = name;
    for (let k = 2; this.series.has(key) && this.tracked.get(key) !== pid; k++) key = `${name}#${k}`;
    this.tracked.set(key, pid);
    if (!this.series.has(key)) this.series.set(key, []);
  }

  start(intervalMs = 5000): void {
    const tick = () => {
      this.running = this.sampleAll();
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  async sampleAll(): Promise<void> {
    const t = Date.now() - this.t0;
    for (const [name, pid] of this.tracked) {
      const r = await readProc(pid);
      if (!r) {
        this.tracked.delete(name);
        continue;
      }
      this.series.get(name)!.push({ t, ...r });
      if (this.out) appendFileSync(this.out, `${JSON.stringify({ t, name, pid, ...r })}\n`);
    }
  }
}
