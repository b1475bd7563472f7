import { ChaosCluster, type ChaosNodeSpec } from './chaos-cluster.js';
import { SetChecker, problems, summarize, type Report } from './checker.js';

/*
 * The failover scenario both Redis topology tests run (test/federation/redis-*.int.test.ts):
 * three `memfed all` processes on the topology, a stream of mixed writes on every node,
 * the Redis primary killed two seconds in, then the set checker: every acknowledged write
 * on every node, nothing applied twice, every cursor at its feed head again.
 */
export interface FailoverRun {
  report: Report;
  found: string[];
  logs: string;
}

export async function failoverRun(opts: {
  name: string;
  /** Env of every node: the Redis topology settings. */
  env: Record<string, string>;
  /** Per node extra env (e.g. its hash-tagged QUEUE_PREFIX). */
  nodeEnv?: (id: string) => Record<string, string>;
  /** Kills the primary; resolves once the topology serves again (a replica took over). */
  fail: () => Promise<void>;
}): Promise<FailoverRun> {
  const nodes: ChaosNodeSpec[] = ['a', 'b', 'c'].map((id) => ({ id, env: opts.nodeEnv?.(id) ?? {} }));
  const cluster = await ChaosCluster.create({
    nodes,
    mode: 'process',
    proxied: false,
    // Unused (the topology settings replace it); not the shared Redis, so no prefix is dropped there.
    redisUrl: 'redis://127.0.0.1:1',
    // W=1: a write is acknowledged at its commit; delivery is what the checker proves.
    // JOB_LOCK_MS 10 s: a push job the lost primary had last seen active comes back at the
    // next stall check after its lock ran out (at most 2 x JOB_LOCK_MS), inside the deadline.
    env: { FED_QUORUM_W: '1', FED_REQUEST_TIMEOUT_MS: '1500', JOB_LOCK_MS: '10000', ...opts.env },
  });
  try {
    const checker = new SetChecker(opts.name, cluster.views());
    checker.startSampling();
    const writes = checker.burst(cluster.nodes, 2000, { concurrency: 3, spacingMs: 30, timeoutMs: 5000, retries: 2, maxMs: 12_000 });
    await new Promise((r) => setTimeout(r, 2000));
    checker.markFault();
    await opts.fail();
    checker.markHealed();
    await writes;
    // Delivery after a failover may wait for the worker watchdog (up to ~25 s) and then for
    // a job the lost primary left active to pass its stall check (2 x JOB_LOCK_MS = 20 s).
    const report = await checker.verify({ deadlineMs: 90_000 });
    const found = problems(report, { acked: 30, samples: 10 });
    console.log(summarize(report, { scenario: opts.name }));
    return { report, found, logs: found.length ? cluster.logs() : '' };
  } finally {
    await cluster.destroy();
  }
}
