import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChaosCluster, type ChaosNode } from '../helpers/chaos-cluster.js';
import { SetChecker, problems, summarize } from '../helpers/checker.js';
import { DEFAULT_BOUNDS, judgeSeries, type GrowthBounds, type SeriesFigures } from '../helpers/growth.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { ProcSampler } from '../helpers/proc-sampler.js';

/*
 * The soak: a three-node mesh of real processes (each node an `api` and a `worker`
 * process, every node-to-node link through a fault proxy, queues on a Redis of the
 * run's own) under a steady write rate for SOAK_DURATION_MS (default 10 minutes), with a
 * fault every SOAK_FAULT_EVERY_MS in turn: a worker SIGKILLed and started again, a node
 * cut off from its peers (both directions blackholed) for 15 s, Redis killed and
 * restarted empty. RSS and open fds of every process are sampled every SOAK_SAMPLE_MS;
 * a memfed process whose series grows beyond the bounds (test/helpers/growth.ts) fails the run,
 * as does any write the checker finds lost, and any process that died unasked.
 */
const env = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);
const DURATION_MS = env('SOAK_DURATION_MS', 600_000);
const FAULT_EVERY_MS = env('SOAK_FAULT_EVERY_MS', 60_000);
const WRITES_PER_SEC = env('SOAK_WRITES_PER_SEC', 10);
const SAMPLE_MS = env('SOAK_SAMPLE_MS', 5000);
const PARTITION_MS = 15_000;
const REDIS_OUTAGE_MS = 3000;
const LANES = 2;

// A shortened run scales warm-up and windows down with it.
const BOUNDS: GrowthBounds = {
  maxSlopeMbPerMin: env('SOAK_MAX_SLOPE_MB_PER_MIN', DEFAULT_BOUNDS.maxSlopeMbPerMin),
  maxGrowthPct: env('SOAK_MAX_GROWTH_PCT', DEFAULT_BOUNDS.maxGrowthPct),
  maxFdGrowth: env('SOAK_MAX_FD_GROWTH', DEFAULT_BOUNDS.maxFdGrowth),
  warmupMs: Math.min(DEFAULT_BOUNDS.warmupMs, DURATION_MS / 5),
  windowMs: Math.min(DEFAULT_BOUNDS.windowMs, DURATION_MS / 5),
  minJudgedMs: Math.min(DEFAULT_BOUNDS.minJudgedMs, DURATION_MS / 2),
};

const OUT_DIR = process.env.SOAK_OUT ?? path.join(tmpdir(), `memfed-soak-${new Date().toISOString().replace(/[:.]/g, '-')}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FaultRecord {
  at: number;
  kind: 'worker-kill' | 'partition' | 'redis-restart';
  node?: string;
  ms: number;
}

describe('soak: steady writes with periodic faults', () => {
  it(`keeps RSS and open fds flat and loses nothing over ${Math.round(DURATION_MS / 1000)} s`, async () => {
    mkdirSync(OUT_DIR, { recursive: true });
    const sampler = new ProcSampler(path.join(OUT_DIR, 'samples.jsonl'));
    const redis = await new PrivateRedis().start();
    let cluster: ChaosCluster | undefined;
    const killed = new Set<number>();
    try {
      cluster = await ChaosCluster.create({
        nodes: ['a', 'b', 'c'].map((id) => ({ id, split: true })),
        mode: 'process',
        redisUrl: redis.url,
        env: { FED_QUORUM_W: '1', FED_REQUEST_TIMEOUT_MS: '2000', CATCHUP_INTERVAL_MS: '5000' },
      });
      const c = cluster;
      const trackAll = () => {
        for (const n of c.nodes) for (const rp of n.running()) sampler.track(rp.name.replace(/-\d+$/, ''), rp.proc.proc.pid);
        sampler.track('redis-server', redis.pid);
      };
      trackAll();
      sampler.start(SAMPLE_MS);
      const checker = new SetChecker('soak', c.views());
      checker.startSampling(1000);
      const started = Date.now();
      const writes = checker.burst(c.nodes, Number.MAX_SAFE_INTEGER, { concurrency: LANES, spacingMs: Math.round((LANES * 1000) / WRITES_PER_SEC), timeoutMs: 10_000, retries: 2, maxMs: DURATION_MS });

      const faults: FaultRecord[] = [];
      const kinds: FaultRecord['kind'][] = ['worker-kill', 'partition', 'redis-restart'];
      for (let i = 0; Date.now() - started + FAULT_EVERY_MS < DURATION_MS; i++) {
        await sleep(FAULT_EVERY_MS);
        const kind = kinds[i % kinds.length]!;
        const node: ChaosNode = c.nodes[Math.floor(i / kinds.length) % c.nodes.length]!;
        const t = Date.now();
        checker.markFault();
        if (kind === 'worker-kill') {
          const w = node.running('worker')[0]!;
          killed.add(w.proc.proc.pid!);
          await node.kill(w);
          await node.spawn('worker');
        } else if (kind === 'partition') {
          c.setMode(c.linksOf(node.id), { kind: 'blackhole' });
          await sleep(PARTITION_MS);
          c.setMode(c.linksOf(node.id), { kind: 'pass' });
        } else {
          killed.add(redis.pid!);
          await redis.stop();
          await sleep(REDIS_OUTAGE_MS);
          await redis.start();
        }
        checker.markHealed();
        trackAll();
        faults.push({ at: t - started, kind, ...(kind === 'redis-restart' ? {} : { node: node.id }), ms: Date.now() - t });
        console.log(`soak: t=${Math.round((t - started) / 1000)}s ${kind}${kind === 'redis-restart' ? '' : ` ${node.id}`} (${Date.now() - t} ms)`);
      }
      const records = await writes;
      const writeMs = Date.now() - started;
      await sampler.stop();

      const report = await checker.verify({ deadlineMs: 120_000 });
      // Redis is reported, not judged: it holds what memfed stores there by design (nonces for
      // 2 x FED_CLOCK_SKEW_MS + 60 s, the retained jobs), which grows for the first minutes.
      const figures: SeriesFigures[] = [...sampler.series].map(([name, s]) => judgeSeries(name, s, name.startsWith('redis-server') ? { ...BOUNDS, minJudgedMs: Infinity } : BOUNDS));
      const died = c.nodes.flatMap((n) => n.procs.filter((p) => (p.proc.proc.exitCode !== null || p.proc.proc.signalCode !== null) && !killed.has(p.proc.proc.pid!)).map((p) => `${p.name} exited unasked (${p.proc.proc.exitCode ?? p.proc.proc.signalCode})`));
      const summary = {
        durationMs: writeMs,
        writes: records.length,
        writesPerSec: Math.round((records.length / writeMs) * 1000 * 10) / 10,
        faults,
        bounds: BOUNDS,
        processes: figures,
        checker: { outcomes: report.outcomes },
      };
      writeFileSync(path.join(OUT_DIR, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
      console.log(summarize(report, { writes: records.length, writesPerSec: summary.writesPerSec, faults: faults.length }));
      console.table(figures.map(({ problems: _p, ...f }) => f));
      console.log(`soak: samples and summary in ${OUT_DIR}`);
      const found = [...problems(report, { acked: Math.floor(records.length / 2), samples: 10 }), ...figures.flatMap((f) => f.problems), ...died];
      if (found.length) console.log(c.logs());
      expect(faults.length).toBeGreaterThan(0);
      expect(found).toEqual([]);
    } finally {
      await sampler.stop();
      await cluster?.destroy();
      await redis.stop();
    }
  });
});
