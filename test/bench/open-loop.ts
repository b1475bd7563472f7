import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { now, percentile } from './stats.js';

/** What a load run measured (closed loop with autocannon, or open loop here). */
export interface LoadResult {
  /** Operations finished per second over the run. */
  rate: number;
  requests: number;
  /** Latency percentiles in ms of the answered operations (open loop: each counted from the time it was due). */
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** Open loop: the driver's own event-loop delay (p99, max, ms) over the run; a stalled driver sends late, charged to the server. */
  driverDelay?: { p99: number; max: number };
}

const REQUEST_TIMEOUT_MS = 30_000;

/** How one operation ended: answered 2xx (or done), answered otherwise, or failed. */
export type Outcome = 'ok' | 'non2xx' | 'error';

/**
 * Operations at a fixed arrival rate, evenly spaced (open loop): operation i is due at
 * start + i / rate whatever the server does, and its latency runs from that due time, so
 * a server that stalls is charged for the queue it causes (no coordinated omission).
 *
 * autocannon's `overallRate` is not this: each connection counts its requests per second
 * and the counter resets every second, so the whole second's quota leaves at once at
 * the closed-loop rate and the connections then sit idle until the next second.
 */
export async function openLoop(seconds: number, rate: number, operation: () => Promise<Outcome>): Promise<LoadResult> {
  const total = Math.max(1, Math.round(seconds * rate));
  // Latencies of answered operations only: a fast failure must not flatter the figures.
  const latencies: number[] = [];
  const counts = { ok: 0, non2xx: 0, error: 0 };
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const start = now();
  let outstanding = 0;
  let allSent = false;
  let drained: () => void = () => {};
  const finished = new Promise<void>((r) => (drained = r));
  const run = async (due: number) => {
    outstanding++;
    const outcome = await operation().catch((): Outcome => 'error');
    if (outcome !== 'error') latencies.push(now() - due);
    counts[outcome]++;
    if (--outstanding === 0 && allSent) drained();
  };
  let next = 0;
  const tick = () => {
    const t = now();
    for (let due = start + (next * 1000) / rate; next < total && due <= t; due = start + (++next * 1000) / rate) void run(due);
    if (next < total) setTimeout(tick, 1);
    else {
      allSent = true;
      if (outstanding === 0) drained();
    }
  };
  tick();
  await finished;
  const elapsed = (now() - start) / 1000;
  delay.disable();
  const pct = (p: number) => Math.round(percentile(latencies, p) * 10) / 10;
  const ms = (ns: number) => Math.round(ns / 1e5) / 10;
  return {
    rate: (counts.ok + counts.non2xx + counts.error) / elapsed,
    requests: counts.ok + counts.non2xx + counts.error,
    p50: pct(50),
    p99: pct(99),
    non2xx: counts.non2xx,
    errors: counts.error,
    driverDelay: { p99: ms(delay.percentile(99)), max: ms(delay.max) },
  };
}

/** One HTTP request per operation over keep-alive sockets (as many as the rate needs). */
export function httpOperation(url: string, request: { method: 'POST' | 'GET'; headers?: Record<string, string>; body?: string }): { operation: () => Promise<Outcome>; close: () => void } {
  const target = new URL(url);
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  const headers = { ...request.headers, ...(body ? { 'content-length': String(body.length) } : {}) };
  // Sockets enough that a request never waits for one at half the closed-loop rate; a
  // stalled server still queues requests here, and their latency counts from the due time.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const operation = () =>
    new Promise<Outcome>((resolve) => {
      const req = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: request.method, headers, agent }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300 ? 'ok' : 'non2xx'));
        res.on('error', () => resolve('error'));
      });
      req.on('error', () => resolve('error'));
      // A server that never answers is a failure, not a bench that never ends.
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('no answer')));
      req.end(body);
    });
  return { operation, close: () => agent.destroy() };
}
