import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChaosCluster } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';

const PAUSE_MS = 10_000;

let cluster: ChaosCluster;
beforeAll(async () => {
  // Real `memfed all` processes, talking directly (no proxies): the fault is the process.
  cluster = await ChaosCluster.create({ nodes: ['a', 'b', 'c'], mode: 'process', proxied: false, env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '1500', FED_REQUEST_TIMEOUT_MS: '1500' } });
});
afterAll(async () => {
  await cluster?.destroy();
});

describe('(e) peer process SIGSTOP for 10 s, then SIGCONT', () => {
  it('every write made during the pause reaches the paused peer after it resumes', async () => {
    const checker = new SetChecker('peer-sigstop-10s', cluster.views());
    checker.startSampling();
    const c = cluster.node('c');
    const [cp] = c.running('all');
    cp!.proc.signal('SIGSTOP');
    checker.markFault();
    const until = Date.now() + PAUSE_MS;
    try {
      // a and b still form a quorum of 2 while c is frozen.
      await checker.burst([cluster.node('a'), cluster.node('b')], 1000, { concurrency: 2, spacingMs: 50, maxMs: PAUSE_MS - 1000 });
      await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())));
    } finally {
      cp!.proc.signal('SIGCONT');
    }
    checker.markHealed();
    const report = await checker.verify({ deadlineMs: 90_000 });
    console.log(summarize(report, { pauseMs: PAUSE_MS }));
    const found = problems(report, { acked: 50, samples: 10 });
    if (found.length) console.log(cluster.logs());
    expect(found).toEqual([]);
  });
});
