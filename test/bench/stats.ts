import { performance } from 'node:perf_hooks';
import { readdirSync, readFileSync } from 'node:fs';

/** Tiny timing and statistics helpers for the benchmark. */

export const now = () => performance.now();

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank - 1, 0), sorted.length - 1)]!;
}

/** Runs `fn` and returns its result with the elapsed milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const start = now();
  const result = await fn();
  return { ms: now() - start, result };
}

/** Operations per second of a synchronous function, run for about `ms` milliseconds. */
export function opsPerSecSync(fn: () => unknown, ms: number): number {
  const start = now();
  let ops = 0;
  let elapsed = 0;
  do {
    fn();
    ops++;
    elapsed = now() - start;
  } while (elapsed < ms);
  return (ops * 1000) / elapsed;
}

/** Operations per second of an async function awaited one at a time, for about `ms` milliseconds. */
export async function opsPerSecAsync(fn: () => Promise<unknown>, ms: number): Promise<number> {
  const start = now();
  let ops = 0;
  let elapsed = 0;
  do {
    await fn();
    ops++;
    elapsed = now() - start;
  } while (elapsed < ms);
  return (ops * 1000) / elapsed;
}

/**
 * Medians of several measurements, interleaved (one of each per repetition, after a
 * discarded warm-up round) so a change in machine load hits every variant alike.
 */
export async function interleavedMedians<K extends string>(reps: number, variants: Record<K, () => number | Promise<number>>): Promise<Record<K, number>> {
  const keys = Object.keys(variants) as K[];
  const samples = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let rep = -1; rep < reps; rep++) {
    for (const k of keys) {
      const v = await variants[k]();
      if (rep >= 0) samples[k].push(v);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, median(samples[k])])) as Record<K, number>;
}

/** Runs `count` tasks with at most `inFlight` running at once (task i gets its index). */
export async function pool(count: number, inFlight: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `check` returns true; throws after `timeoutMs`. */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs: number, intervalMs = 25): Promise<void> {
  const deadline = now() + timeoutMs;
  while (!(await check())) {
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Human number: 3 significant digits, thousands grouped. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/**
 * CPU seconds (user + system) used so far by the live processes named `comm` (Linux
 * /proc; NaN where it cannot be read). A delta across a phase whose processes live through
 * it (the Postgres backends of open pools) is that phase's CPU.
 */
export function processCpuSeconds(comm: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return Number.NaN;
  }
  for (const pid of entries) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== comm) continue;
      total += pidCpuSeconds(Number(pid));
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/** CPU seconds (user + system) used so far by process `pid` (Linux /proc); throws if it is gone. */
export function pidCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised name: utime and stime are the 12th and 13th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

// USER_HZ: 100 on every Linux this runs on.
const USER_HZ = 100;

/** CPU seconds of this process (every thread) so far. */
export const ownCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
