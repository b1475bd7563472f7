import { describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { waitFor } from '../helpers/env.js';

/*
 * (f) Node a runs its API and its push worker as separate processes; a's pushes to b go
 * through a proxy that holds every chunk 300 ms, and batches are small, so the worker
 * spends most of its time mid-push. The worker is then SIGKILLed, or SIGSTOPped past its
 * BullMQ lock (JOB_LOCK_MS=5000) while a second worker takes the stalled job over.
 */
const ENV = { FED_QUORUM_W: '1', JOB_LOCK_MS: '5000', FED_REQUEST_TIMEOUT_MS: '3000', PUSH_BATCH_MAX: '5', CATCHUP_INTERVAL_MS: '600000' };
const PUSH = 'POST /api/v1/sync/push';

async function startCluster(): Promise<ChaosCluster> {
  // b pulls from a only on contact (catch-up tick far away): a's pushes must do the work.
  return ChaosCluster.create({ nodes: [{ id: 'a', split: true }, 'b'], mode: 'process', env: ENV });
}

/** Waits until a push from a to b is on the wire and unanswered. */
async function midPush(cluster: ChaosCluster): Promise<void> {
  const link = cluster.link('a', 'b');
  await waitFor(async () => (link.stats.byRoute[PUSH] ?? 0) >= 2 && link.awaitingResponse > 0, { timeoutMs: 20_000, intervalMs: 10, what: 'a push in flight from a to b' });
}

describe('(f) push worker faults', () => {
  it('worker SIGKILLed mid-push: the job is re-run by a new worker, nothing lost, nothing applied twice', async () => {
    const cluster = await startCluster();
    try {
      const a = cluster.node('a');
      const checker = new SetChecker('worker-sigkill-mid-push', cluster.views());
      checker.startSampling();
      cluster.link('a', 'b').setMode({ kind: 'delay', ms: 300 });
      const writes = checker.burst([a], 120, { concurrency: 3, spacingMs: 40 });
      await midPush(cluster);
      const [worker] = a.running('worker');
      const inFlightAtKill = cluster.link('a', 'b').awaitingResponse;
      await a.kill(worker!);
      checker.markFault();
      await new Promise((r) => setTimeout(r, 1500));
      await a.spawn('worker');
      await writes;
      cluster.link('a', 'b').setMode({ kind: 'pass' });
      checker.markHealed();
      const report = await checker.verify({ deadlineMs: 90_000 });
      console.log(summarize(report, { inFlightAtKill }));
      const found = problems(report, { acked: 30, samples: 10 });
      if (found.length) console.log(cluster.logs());
      expect(inFlightAtKill).toBeGreaterThan(0);
      expect(found).toEqual([]);
    } finally {
      await cluster.destroy();
    }
  });

  it('worker SIGSTOPped past its lock: another worker takes the stalled job; the resumed one moves no cursor back and applies nothing twice', async () => {
    const cluster = await startCluster();
    try {
      const a = cluster.node('a');
      const checker = new SetChecker('worker-sigstop-past-lock', cluster.views());
      checker.startSampling();
      cluster.link('a', 'b').setMode({ kind: 'delay', ms: 300 });
      const writes = checker.burst([a], 200, { concurrency: 2, spacingMs: 60, maxMs: 18_000 });
      await midPush(cluster);
      const [stopped] = a.running('worker');
      stopped!.proc.signal('SIGSTOP');
      checker.markFault();
      const pausedAt = Date.now();
      let takenOverMs = 0;
      try {
        // The only worker is frozen holding the job's lock; a second one starts and, once
        // the lock has lapsed (5 s) and its stalled checks (every 5 s, two passes: mark,
        // then move) have run, takes the job over and delivers while the first is frozen.
        await a.spawn('worker');
        const pushesBefore = cluster.link('a', 'b').stats.byRoute[PUSH] ?? 0;
        await waitFor(async () => (cluster.link('a', 'b').stats.byRoute[PUSH] ?? 0) > pushesBefore, { timeoutMs: 30_000, intervalMs: 50, what: 'the second worker pushing while the first is frozen' });
        takenOverMs = Date.now() - pausedAt;
        // Frozen well past its lock in any case.
        await new Promise((r) => setTimeout(r, Math.max(0, pausedAt + 10_000 - Date.now())));
      } finally {
        stopped!.proc.signal('SIGCONT');
      }
      const stoppedMs = Date.now() - pausedAt;
      await writes;
      // Let the resumed worker finish (or fail) its stale run against the slow link.
      await new Promise((r) => setTimeout(r, 3000));
      cluster.link('a', 'b').setMode({ kind: 'pass' });
      checker.markHealed();
      const report = await checker.verify({ deadlineMs: 90_000 });
      console.log(summarize(report, { stoppedMs, takenOverMs }));
      expect(takenOverMs).toBeGreaterThanOrEqual(2500);
      const found = problems(report, { acked: 30, samples: 10 });
      if (found.length) console.log(cluster.logs());
      expect(found).toEqual([]);
    } finally {
      await cluster.destroy();
    }
  });
});
