import { randomUUID } from 'node:crypto';
import { loadConfig, type PeerConfig } from '../../src/config.js';
import { PeerClient } from '../../src/federation/client.js';
import { replayWithinBudget, type ReplayDeps } from '../../src/federation/dlq-replay.js';
import { KeyRing } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { countReplayable, deadLetter, leaseReplayable, releaseLease, type DeadLetter } from '../../src/store/dlq.js';
import { loadStored } from '../../src/store/replica.js';
import { wireMemory } from '../helpers/peer.js';
import type { BenchContext } from './context.js';
import { metricSum, scrape } from './infra.js';
import { now, ownCpuSeconds, pidCpuSeconds, processCpuSeconds, timed } from './stats.js';

const SRC = 'bench-dlq-src';
const PEER = 'bench-dlq-peer';
const SEED_CHUNK = 2000;
const UPSTREAM_ROWS = 62_000;
const UPSTREAM_SECONDS = 8 * 3600;

/** PeerClient that keeps the time spent in push requests (sign, send, receiver, parse). */
class TimedClient extends PeerClient {
  pushMs = 0;
  pushes = 0;
  override async push(peer: PeerConfig, body: unknown) {
    const t = now();
    try {
      return await super.push(peer, body);
    } finally {
      this.pushMs += now() - t;
      this.pushes++;
    }
  }
}

/**
 * Section 5: DLQ drain. Pending rows for one peer, seeded with deadLetter, replayed by
 * replay runs (as the DLQ worker makes them) to a real memfed node until none are pending.
 */
export async function dlqSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const rows = ctx.size(60_000, 10_000);
  const keyDir = infra.keyDir();
  await infra.enrol(keyDir, [SRC, PEER]);
  const settings = { DLQ_REPLAY_MAX_BATCH: '2048', PUSH_BATCH_MAX: '500' };
  // The peer is a process of its own, as a peer is: its apply does not share this event loop.
  const peerNode = await infra.startNode({ id: PEER, keyDir, env: settings, ownProcess: true });
  const config = loadConfig({ NODE_ID: SRC, FED_KEY_DIR: keyDir, ...settings });
  const src = await infra.migratedDatabase(10);
  const db = src.database.db;
  const peer: PeerConfig = { id: PEER, url: peerNode.url };
  const keys = await KeyRing.load(keyDir, SRC);
  const client = new TimedClient({ selfId: SRC, signingKey: keys.signingKey, apiKey: '', timeoutMs: 30_000 });
  const deps: ReplayDeps = {
    db,
    client,
    selfId: SRC,
    peers: new Map([[PEER, peer]]),
    batchMax: config.push.batchMax,
    batchMaxBytes: config.push.batchMaxBytes,
    maxAttempts: config.dlq.maxReplayAttempts,
    replayMaxBatch: config.dlq.replayMaxBatch,
    logger: createLogger('silent'),
    metrics: createMetrics({ nodeId: SRC, role: 'bench', defaultMetrics: false }),
    onQuarantine: () => {},
  };
  const seed = async (n: number) => {
    for (let i = 0; i < n; i += SEED_CHUNK) {
      const chunk: DeadLetter[] = Array.from({ length: Math.min(SEED_CHUNK, n - i) }, () => {
        const id = randomUUID();
        return { peerId: PEER, memoryId: id, op: 'upsert', payload: wireMemory({ id, namespace: 'bench/dlq' }), failureClass: 'transient', error: 'peer was down' };
      });
      await deadLetter(db, chunk);
    }
  };
  const drain = async () => {
    // As the DLQ worker runs it: rounds within DLQ_RUN_BUDGET_MS, runs until none is left.
    let rounds = 0;
    let replayed = 0;
    for (let stalls = 0; ; ) {
      const r = await replayWithinBudget(deps, { peerId: PEER }, config.dlq.runBudgetMs);
      rounds += r.rounds;
      replayed += r.replayed;
      if (r.failed > 0 || r.quarantined > 0) throw new Error(`replay run refused rows: ${JSON.stringify(r)}`);
      if (r.taken === 0) return { rounds, replayed };
      if (r.replayed === 0 && ++stalls > 3) throw new Error(`DLQ drain makes no progress: ${JSON.stringify(r)}`);
    }
  };

  // Warm-up: a small backlog drained through the same path.
  await seed(2048);
  await drain();

  const seeded = await timed(() => seed(rows));
  // Stage probe on the full backlog (read-only: the lease is released again).
  const count = await timed(() => countReplayable(db, [PEER]));
  const owner = randomUUID();
  const lease = await timed(() => leaseReplayable(db, [PEER], config.dlq.replayMaxBatch, owner, 60_000));
  const load = await timed(() => loadStored(db, lease.result.map((r) => r.memoryId)));
  await releaseLease(db, lease.result.map((r) => r.id), owner);

  client.pushMs = 0;
  client.pushes = 0;
  const before = await scrape(peerNode.url);
  const peerCpu = () => (peerNode.running.pid !== undefined ? pidCpuSeconds(peerNode.running.pid) : Number.NaN);
  const cpu0 = { pg: processCpuSeconds('postgres'), own: ownCpuSeconds(), peer: peerCpu() };
  const t0 = now();
  const { rounds, replayed } = await drain();
  const totalMs = now() - t0;
  const cpu = { pg: processCpuSeconds('postgres') - cpu0.pg, own: ownCpuSeconds() - cpu0.own, peer: peerCpu() - cpu0.peer };
  const after = await scrape(peerNode.url);

  const [{ pending }] = (await src.database.sql`SELECT count(*)::int AS pending FROM federation_push_dlq WHERE status = 'pending'`) as unknown as [{ pending: number }];
  const peerSql = infra.rawSql(peerNode.dbUrl, 1);
  const [{ held }] = (await peerSql`SELECT count(*)::int AS held FROM memories WHERE namespace = 'bench/dlq'`) as unknown as [{ held: number }];
  if (pending !== 0 || replayed !== rows || held !== rows + 2048) throw new Error(`drain incomplete: pending ${pending}, replayed ${replayed}/${rows}, peer holds ${held}`);

  const secs = totalMs / 1000;
  const rate = rows / secs;
  report.add({ metric: `DLQ drain ${rows} rows`, value: rate, unit: 'rows/s', baselineLabel: 'upstream 62,000 rows in 8+ h', baseline: UPSTREAM_ROWS / UPSTREAM_SECONDS, informational: true });
  report.add({ metric: `DLQ drain ${rows} rows`, value: rate, unit: 'rows/s', baselineLabel: 'upstream 64 rows / 30 s tick', baseline: 64 / 30, informational: true });
  if (ctx.shared.rawBatchedRowsPerSec !== undefined) {
    report.add({ metric: `DLQ drain ${rows} rows`, value: rate, unit: 'rows/s', baselineLabel: 'raw batched INSERT (PG ceiling)', baseline: ctx.shared.rawBatchedRowsPerSec });
  }
  report.add({ metric: `DLQ drain time, ${rows} rows`, value: secs, unit: 's', baselineLabel: 'upstream pace (62,000 rows / 8 h)', baseline: (UPSTREAM_SECONDS * rows) / UPSTREAM_ROWS, better: 'lower', informational: true });

  const recvMs = (metricSum(after, 'memfed_http_request_duration_seconds_sum', { route: '/api/v1/sync/push' }) - metricSum(before, 'memfed_http_request_duration_seconds_sum', { route: '/api/v1/sync/push' })) * 1000;
  report.note(`seeded ${rows} rows with deadLetter in ${(seeded.ms / 1000).toFixed(1)} s (${(rows / (seeded.ms / 1000)).toFixed(0)} rows/s); ${rounds} rounds of <= ${config.dlq.replayMaxBatch}, ${client.pushes} push requests of <= ${config.push.batchMax}`);
  report.note(
    `stages: push requests ${(client.pushMs / 1000).toFixed(1)} s summed over requests (up to two in flight; receiver handling ${(recvMs / 1000).toFixed(1)} s summed) ` +
      `in ${(totalMs / 1000).toFixed(1)} s of drain; round mean ${(totalMs / rounds).toFixed(0)} ms (each next round leased while one is sent)`,
  );
  const perRow = (seconds: number) => `${((seconds * 1e6) / rows).toFixed(0)} us`;
  report.note(`CPU per drained row: Postgres (both nodes' databases) ${perRow(cpu.pg)}, sender ${perRow(cpu.own)}, receiver ${perRow(cpu.peer)}; raw batched INSERT: Postgres ${ctx.shared.rawBatchedPgCpuUsPerRow?.toFixed(0) ?? '?'} us`);
  report.note(
    `probe on the full backlog: countReplayable ${count.ms.toFixed(0)} ms, leaseReplayable(${config.dlq.replayMaxBatch}) ${lease.ms.toFixed(0)} ms, ` +
      `loadStored(${lease.result.length} ids) ${load.ms.toFixed(0)} ms`,
  );
}
