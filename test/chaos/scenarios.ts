import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, summarize, type Report } from '../helpers/checker.js';
import type { ProxyStats } from '../helpers/fault-proxy.js';

/*
 * Scenarios shared by the fault campaign (*.chaos.ts) and the CI smoke subset
 * (smoke.int.test.ts): same code, smaller numbers in CI.
 */

/**
 * W=2 with a generous quorum wait: on a loaded machine a slow ack must not turn the
 * acknowledged writes the tests count into 503-committed ones.
 */
const QUORUM_ENV = { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '8000' };

export interface ScenarioResult {
  report: Report;
  /** Stats of the faulted links, summed. */
  stats: ProxyStats;
}

export function sumStats(all: ProxyStats[]): ProxyStats {
  const out: ProxyStats = { connections: 0, exchanges: 0, byRoute: {}, faultsByRoute: {}, resets: 0, droppedResponses: 0, answered: 0, blackholed: 0, delayedChunks: 0, upstreamErrors: 0, bytesUp: 0, bytesDown: 0, maxInFlight: 0 };
  for (const s of all) {
    for (const k of ['connections', 'exchanges', 'resets', 'droppedResponses', 'answered', 'blackholed', 'delayedChunks', 'upstreamErrors', 'bytesUp', 'bytesDown'] as const) out[k] += s[k];
    out.maxInFlight = Math.max(out.maxInFlight, s.maxInFlight);
    for (const [r, n] of Object.entries(s.byRoute)) out.byRoute[r] = (out.byRoute[r] ?? 0) + n;
    for (const [r, n] of Object.entries(s.faultsByRoute)) out.faultsByRoute[r] = (out.faultsByRoute[r] ?? 0) + n;
  }
  return out;
}

/**
 * (a) Three in-process nodes, W=2; every link into `c` resets `fraction` of its
 * exchanges (TCP RST before the request reaches c) during a write burst spread over all
 * three nodes. Healed after the burst; every write must converge everywhere.
 */
export async function resetsScenario(opts: { writes: number; fraction?: number; concurrency?: number; deadlineMs?: number; name?: string }): Promise<ScenarioResult> {
  const cluster = await ChaosCluster.create({ nodes: ['a', 'b', 'c'], env: QUORUM_ENV });
  try {
    const checker = new SetChecker(opts.name ?? 'resets', cluster.views());
    checker.startSampling();
    const into = cluster.linksInto('c');
    cluster.setMode(into, { kind: 'reset', fraction: opts.fraction ?? 0.3 });
    checker.markFault();
    await checker.burst(cluster.nodes, opts.writes, { concurrency: opts.concurrency ?? 6, timeoutMs: 10_000 });
    cluster.setMode(into, { kind: 'pass' });
    checker.markHealed();
    const report = await checker.verify({ deadlineMs: opts.deadlineMs ?? 60_000 });
    const stats = sumStats(into.map((p) => p.stats));
    console.log(summarize(report, { resets: stats.resets, exchanges: stats.exchanges, faults: stats.faultsByRoute }));
    return { report, stats };
  } finally {
    await cluster.destroy();
  }
}

/**
 * (b) Three in-process nodes, W=2; every link into `c` forwards requests (c commits)
 * but loses `fraction` of the responses. The senders see a reset after the peer
 * committed and re-send: c must apply each version once (LWW no-op on the re-send)
 * and everything converges once healed.
 */
export async function dropResponseScenario(opts: { writes: number; fraction?: number; concurrency?: number; deadlineMs?: number; name?: string }): Promise<ScenarioResult> {
  const cluster = await ChaosCluster.create({ nodes: ['a', 'b', 'c'], env: QUORUM_ENV });
  try {
    const checker = new SetChecker(opts.name ?? 'drop-response', cluster.views());
    checker.startSampling();
    const into = cluster.linksInto('c');
    cluster.setMode(into, { kind: 'drop-response', fraction: opts.fraction ?? 0.5 });
    checker.markFault();
    await checker.burst([cluster.node('a'), cluster.node('b')], opts.writes, { concurrency: opts.concurrency ?? 4, timeoutMs: 10_000 });
    // Keep losing answers a little longer: retries of the lost pushes hit the fault too.
    await new Promise((r) => setTimeout(r, 1000));
    cluster.setMode(into, { kind: 'pass' });
    checker.markHealed();
    const report = await checker.verify({ deadlineMs: opts.deadlineMs ?? 60_000 });
    const stats = sumStats(into.map((p) => p.stats));
    console.log(summarize(report, { droppedResponses: stats.droppedResponses, exchanges: stats.exchanges, faults: stats.faultsByRoute }));
    return { report, stats };
  } finally {
    await cluster.destroy();
  }
}
