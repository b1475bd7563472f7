import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { CHECKER_APP_NAME, ChaosCluster, type ChaosNode } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { PG_ADMIN_URL } from '../helpers/env.js';

/*
 * (i) Every Postgres connection of one node is terminated (pg_terminate_backend on that
 * node's own database only, never anything else on the shared server), three times
 * during a stream of writes, then once for a second node.
 */

interface Run {
  cluster: ChaosCluster;
  checker: SetChecker;
  terminated: number[];
  /** Nodes whose process was no longer running after the fault. */
  died: ChaosNode[];
}

async function pgTerminateRun(name: string, body: (run: Run) => Promise<void>): Promise<void> {
  // A short job lock: a restarted node's push jobs left active by its dead process are
  // recovered as stalled in seconds, not minutes (they hold the per-peer dedup id).
  const cluster = await ChaosCluster.create({ nodes: ['a', 'b', 'c'], mode: 'process', proxied: false, env: { FED_QUORUM_W: '1', JOB_LOCK_MS: '5000', FED_REQUEST_TIMEOUT_MS: '3000' } });
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  try {
    const terminate = async (dbName: string): Promise<number> => {
      // Scoped to this test's own database: the shared server and other tests are untouched.
      if (!dbName.startsWith('memfed_t_')) throw new Error(`refusing to touch ${dbName}`);
      // The checker's own connections are spared: it observes the fault, it is not its target.
      const rows = await admin`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = ${dbName} AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM ${CHECKER_APP_NAME}`;
      return rows.filter((r) => r.ok).length;
    };
    const checker = new SetChecker(name, cluster.views());
    checker.startSampling();
    const writes = checker.burst(cluster.nodes, 2000, { concurrency: 3, spacingMs: 30, timeoutMs: 5000, retries: 3, maxMs: 8000 });
    const terminated: number[] = [];
    await new Promise((r) => setTimeout(r, 1000));
    checker.markFault();
    for (let i = 0; i < 3; i++) {
      terminated.push(await terminate(cluster.node('b').db.name));
      await new Promise((r) => setTimeout(r, 1200));
    }
    terminated.push(await terminate(cluster.node('a').db.name));
    checker.markHealed();
    await writes;
    await new Promise((r) => setTimeout(r, 500));
    const died = cluster.nodes.filter((n) => n.running().length === 0);
    await body({ cluster, checker, terminated, died });
  } finally {
    await admin.end();
    await cluster.destroy();
  }
}

describe('(i) Postgres connections of a node terminated mid-run', () => {
  it('nothing committed is lost, and every node serves writes again (restarted by a supervisor if its process died)', async () => {
    await pgTerminateRun('pg-terminate', async ({ cluster, checker, terminated, died }) => {
      // A supervisor's job (systemd, k8s): bring back a process that exited.
      for (const n of died) await n.spawn('all');
      for (const n of cluster.nodes) {
        const w = await checker.write(n, { retries: 2 });
        expect(w.outcome, `${n.id}: ${w.error}\n${n.logs()}`).toBe('acked');
      }
      const report = await checker.verify({ deadlineMs: 90_000 });
      const retried = [...checker.writes.values()].filter((w) => w.attempts > 1).length;
      console.log(summarize(report, { terminatedBackends: terminated, retriedWrites: retried, processesDied: died.map((n) => n.id) }));
      const found = problems(report, { acked: 20, samples: 10 });
      if (found.length) console.log(cluster.logs());
      expect(terminated.reduce((s, n) => s + n, 0)).toBeGreaterThan(0);
      expect(found).toEqual([]);
    });
  });

  // postgres.js 3.4.9 used to throw from a setImmediate callback here (porsager/postgres
  // #1154, #1208) and kill the process; src/db/postgres-driver-patch.mjs (postinstall)
  // applies the upstream guard. This is the proof that a node now survives on its own.
  it('the node recovers on its own: its process survives and serves writes without a restart', async () => {
    await pgTerminateRun('pg-terminate-survives', async ({ cluster, checker, died }) => {
      expect(died.map((n) => `${n.id}: ${n.logs().slice(-1500)}`)).toEqual([]);
      for (const n of cluster.nodes) expect((await checker.write(n, { retries: 2 })).outcome).toBe('acked');
      expect(problems(await checker.verify({ deadlineMs: 60_000 }), { acked: 20, samples: 10 })).toEqual([]);
    });
  });
});
