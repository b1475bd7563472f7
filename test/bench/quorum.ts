import type { BenchContext } from './context.js';
import { load } from './http.js';
import type { BenchNode } from './infra.js';
import { freePort } from '../helpers/env.js';

const P99_TARGET_MS = 50;

/**
 * Section: the write path with a quorum. Three `memfed all` processes; A has FED_PEERS=B,C
 * and answers a POST once W nodes hold the row (itself and one peer at W=2). autocannon on
 * A (32 connections, closed loop) at W=2 against the same at W=1 on the same database, then
 * W=2 latency at a fixed rate of half its throughput (goal: p99 under 50 ms).
 */
export async function quorumSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const seconds = ctx.size(10, 4);
  const keyDir = infra.keyDir();
  await infra.enrol(keyDir, ['bench-qa', 'bench-qb', 'bench-qc']);
  const peers = await Promise.all(['bench-qb', 'bench-qc'].map((id) => infra.startNode({ id, keyDir, ownProcess: true })));
  const aDb = infra.newDatabaseName();
  const aPrefix = infra.prefix('qa');
  const aPort = await freePort();
  const startA = (w: number) =>
    infra.startNode({ id: 'bench-qa', keyDir, peers, dbName: aDb, prefix: aPrefix, port: aPort, ownProcess: true, env: { FED_QUORUM_W: String(w), FED_ACK_TIMEOUT_MS: '5000' } });
  const target = `http://127.0.0.1:${aPort}/api/v1/memories`;

  const measure = async (a: BenchNode, w: number) => {
    try {
      await load(target, 3, {});
      const closed = await load(target, seconds, {});
      const fixed = await load(target, seconds, { overallRate: Math.max(1, Math.round(closed.rate / 2)) });
      if (closed.non2xx > 0 || fixed.non2xx > 0 || closed.errors > 0 || fixed.errors > 0) throw new Error(`W=${w}: ${closed.non2xx + fixed.non2xx} non-2xx (503 quorum_not_met counts), ${closed.errors + fixed.errors} errors`);
      return { closed, fixed };
    } finally {
      await infra.stopNode(a);
    }
  };
  const w1 = await measure(await startA(1), 1);
  const w2 = await measure(await startA(2), 2);

  report.add({ metric: 'POST /memories, W=2 of 3 nodes, 32 connections', value: w2.closed.rate, unit: 'writes/s', baselineLabel: 'same node at W=1', baseline: w1.closed.rate });
  report.add({ metric: `POST p99 W=2 at ${Math.round(w2.closed.rate / 2)} writes/s (half of the above)`, value: w2.fixed.p99, unit: 'ms', baselineLabel: 'target quorum p99', baseline: P99_TARGET_MS, better: 'lower' });
  report.add({ metric: 'POST p99 W=2 at half rate', value: w2.fixed.p99, unit: 'ms', baselineLabel: `W=1 p99 at ${Math.round(w1.closed.rate / 2)} writes/s`, baseline: w1.fixed.p99, better: 'lower', informational: true });
  report.note(
    `W=1: ${w1.closed.rate.toFixed(0)} writes/s closed loop (p50/p99 ${w1.closed.p50}/${w1.closed.p99} ms), half rate p50/p99 ${w1.fixed.p50}/${w1.fixed.p99} ms; ` +
      `W=2: ${w2.closed.rate.toFixed(0)} writes/s (p50/p99 ${w2.closed.p50}/${w2.closed.p99} ms), half rate p50/p99 ${w2.fixed.p50}/${w2.fixed.p99} ms; A, B and C are processes of their own on this machine`,
  );
}
