import type { BenchContext } from './context.js';
import { memoryInput } from './data.js';
import { metricSum, scrape, type BenchNode } from './infra.js';
import { now, ownCpuSeconds, percentile, pidCpuSeconds, pool, processCpuSeconds, until } from './stats.js';

/** The upstream quote (docs/wire.md): 80 push requests/s of 5-memory batches on Postgres. */
const UPSTREAM_PUSH_RPS = 80;
const UPSTREAM_ROWS_PER_SEC = UPSTREAM_PUSH_RPS * 5;
const BULK = 500;
const SINGLE_IN_FLIGHT = 16;
const PUSH_ROUTE = '/api/v1/sync/push';

interface Counters {
  pushesOk: number;
  pushesAll: number;
  rowsAcked: number;
  /** Receiver-side seconds and count of push requests (B's HTTP histogram). */
  recvSeconds: number;
  recvCount: number;
}

/**
 * Section 4: end-to-end replication from node A (in this process, FED_PEERS=B) to node B
 * (a `memfed all` process of its own, as a peer is).
 * Writes go to A's HTTP API; the clock stops when B's database holds every row. Then
 * single-write latency with FED_QUORUM_W=2 against the same with W=1.
 */
export async function replicationSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const bulkRows = ctx.size(20_000, 4_000);
  const singleRows = ctx.size(3_000, 600);
  const latencyN = ctx.size(300, 80);
  const smallRows = ctx.size(3_000, 1_000);
  const keyDir = infra.keyDir();
  await infra.enrol(keyDir, ['bench-a', 'bench-b']);
  // B is a process of its own, as a peer is; A (and the load) run in this process.
  const b = await infra.startNode({ id: 'bench-b', keyDir, ownProcess: true });
  const aDb = infra.newDatabaseName();
  const aPrefix = infra.prefix('a');
  // A restarts with other settings on the same database and prefix.
  const startA = (w: number, batchMax = 500) =>
    infra.startNode({ id: 'bench-a', keyDir, peers: [b], dbName: aDb, prefix: aPrefix, env: { FED_QUORUM_W: String(w), PUSH_BATCH_MAX: String(batchMax) } });
  let a = await startA(1);
  const bSql = infra.rawSql(b.dbUrl, 1);
  const bCount = async () => ((await bSql`SELECT count(*)::int AS n FROM memories`)[0]?.n as number | undefined) ?? 0;
  let written = 0; // rows committed on A (all must reach B)
  let direct = 0; // rows written straight to B (the no-replication baseline)
  const waitReplicated = () => until(async () => (await bCount()) >= written + direct, `B to hold ${written + direct} rows`, 180_000, 20);

  const postBulk = async (offset: number, n: number) => {
    const res = await fetch(`${a.url}/api/v1/memories/bulk`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(Array.from({ length: n }, (_, i) => memoryInput(offset + i))) });
    const body = (await res.json()) as { created?: number };
    if (res.status !== 200 || body.created !== n) throw new Error(`bulk POST: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    written += n;
  };
  const postOne = async (i: number, to: BenchNode = a): Promise<number> => {
    const res = await fetch(`${to.url}/api/v1/memories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(memoryInput(i)) });
    await res.arrayBuffer();
    // 503 quorum_not_met: committed all the same.
    if (res.status !== 201 && res.status !== 503) throw new Error(`POST /api/v1/memories: ${res.status}`);
    if (to === a) written++;
    else direct++;
    return res.status;
  };

  // Warm-up: both APIs, the push worker, B's apply path, fetch keep-alive.
  await postBulk(0, BULK);
  await pool(200, SINGLE_IN_FLIGHT, async (i) => void (await postOne(i)));
  await waitReplicated();

  // Bulk: sequential 500-row requests.
  const bulk = await measure(a, b, async () => {
    for (let off = 0; off < bulkRows; off += BULK) await postBulk(off, Math.min(BULK, bulkRows - off));
  }, waitReplicated);
  reportPhase(ctx, `bulk ${bulkRows} rows (${BULK}/request)`, bulkRows, bulk);

  // Singles: 16 POSTs in flight, to A (replicated) and, as the baseline, to B (no peers).
  const singles = await measure(a, b, () => pool(singleRows, SINGLE_IN_FLIGHT, async (i) => void (await postOne(i))), waitReplicated);
  reportPhase(ctx, `single POSTs ${singleRows} rows (${SINGLE_IN_FLIGHT} in flight)`, singleRows, singles);
  const tDirect = now();
  await pool(singleRows, SINGLE_IN_FLIGHT, async (i) => void (await postOne(i, b)));
  const directRate = (singleRows * 1000) / (now() - tDirect);
  report.add({ metric: `single POSTs replicated A->B (${SINGLE_IN_FLIGHT} in flight)`, value: singleRows / (singles.totalMs / 1000), unit: 'rows/s', baselineLabel: 'same POSTs to a node without peers', baseline: directRate });

  // Quorum latency: one request at a time, W=1 (baseline) then W=2 on the same database.
  const latencies = async () => {
    for (let i = 0; i < 20; i++) await postOne(i);
    const ms: number[] = [];
    let unmet = 0;
    for (let i = 0; i < latencyN; i++) {
      const t = now();
      if ((await postOne(i)) === 503) unmet++;
      ms.push(now() - t);
    }
    return { ms, unmet };
  };
  const w1 = await latencies();
  await infra.stopNode(a);
  a = await startA(2);
  const w2 = await latencies();
  for (const p of [50, 95, 99]) {
    report.add({ metric: `POST latency W=2 p${p}`, value: percentile(w2.ms, p), unit: 'ms', baselineLabel: `same, W=1 p${p}`, baseline: percentile(w1.ms, p), better: 'lower' });
  }
  report.add({ metric: 'POST latency W=2 p95', value: percentile(w2.ms, 95), unit: 'ms', baselineLabel: 'upstream target p95 < 2 s', baseline: 2000, better: 'lower', informational: true });
  report.add({ metric: 'POST latency W=2 p99', value: percentile(w2.ms, 99), unit: 'ms', baselineLabel: 'upstream target p99 < 5 s', baseline: 5000, better: 'lower', informational: true });
  report.note(`${latencyN} sequential POSTs per W after 20 warm-up; quorum_not_met (503): W=2 ${w2.unmet}, W=1 ${w1.unmet}; max W=2 ${percentile(w2.ms, 100).toFixed(1)} ms`);
  await waitReplicated();

  // Like-for-like with the upstream quote: PUSH_BATCH_MAX=5, so every push carries 5 rows.
  await infra.stopNode(a);
  a = await startA(1, 5);
  const small = await measure(a, b, async () => {
    for (let off = 0; off < smallRows; off += BULK) await postBulk(off, Math.min(BULK, smallRows - off));
  }, waitReplicated);
  reportPhase(ctx, `bulk ${smallRows} rows, PUSH_BATCH_MAX=5`, smallRows, small, false);
}

interface Phase {
  ingestMs: number;
  totalMs: number;
  delta: Counters;
  /** CPU seconds over the phase: every Postgres process, this process (A and the load), B's process. */
  pgCpu: number;
  aCpu: number;
  bCpu: number;
}

/** Runs `write`, then `settle` (B holds everything), with A's and B's counters around it. */
async function measure(a: BenchNode, b: BenchNode, write: () => Promise<void>, settle: () => Promise<void>): Promise<Phase> {
  const before = await counters(a, b);
  const pg0 = processCpuSeconds('postgres');
  const own0 = ownCpuSeconds();
  const bCpu = () => (b.running.pid !== undefined ? pidCpuSeconds(b.running.pid) : Number.NaN);
  const b0 = bCpu();
  const t = now();
  await write();
  const ingestMs = now() - t;
  await settle();
  const totalMs = now() - t;
  const pgCpu = processCpuSeconds('postgres') - pg0;
  const aCpu = ownCpuSeconds() - own0;
  const bUsed = bCpu() - b0;
  const after = await counters(a, b);
  const delta = Object.fromEntries(Object.keys(after).map((k) => [k, after[k as keyof Counters] - before[k as keyof Counters]])) as unknown as Counters;
  return { ingestMs, totalMs, delta, pgCpu, aCpu, bCpu: bUsed };
}

async function counters(a: BenchNode, b: BenchNode): Promise<Counters> {
  const [ta, tb] = await Promise.all([scrape(a.url), scrape(b.url)]);
  return {
    pushesOk: metricSum(ta, 'memfed_push_outcomes_total', { class: 'ok' }),
    pushesAll: metricSum(ta, 'memfed_push_outcomes_total'),
    rowsAcked: metricSum(ta, 'memfed_pushed_rows_total'),
    recvSeconds: metricSum(tb, 'memfed_http_request_duration_seconds_sum', { route: PUSH_ROUTE }),
    recvCount: metricSum(tb, 'memfed_http_request_duration_seconds_count', { route: PUSH_ROUTE }),
  };
}

function reportPhase(ctx: BenchContext, label: string, rows: number, p: Phase, withCeiling = true): void {
  const { report } = ctx;
  const secs = p.totalMs / 1000;
  const rowsPerSec = rows / secs;
  const pushRps = p.delta.pushesOk / secs;
  report.add({ metric: `replicated A->B, ${label}`, value: rowsPerSec, unit: 'rows/s', baselineLabel: 'upstream 80 req/s x 5 rows', baseline: UPSTREAM_ROWS_PER_SEC, informational: true });
  if (withCeiling && ctx.shared.rawBatchedRowsPerSec !== undefined) {
    report.add({ metric: `replicated A->B, ${label}`, value: rowsPerSec, unit: 'rows/s', baselineLabel: 'raw batched INSERT (PG ceiling)', baseline: ctx.shared.rawBatchedRowsPerSec });
  }
  // Where the time goes: the Postgres CPU a replicated row costs (A's insert and feed row,
  // A's feed page and row reads, B's LWW apply and feed row) against a raw batched row.
  if (withCeiling && ctx.shared.rawBatchedPgCpuUsPerRow !== undefined && Number.isFinite(p.pgCpu)) {
    report.add({ metric: `Postgres CPU per replicated row, ${label}`, value: (p.pgCpu * 1e6) / rows, unit: 'us', baselineLabel: 'Postgres CPU per row, raw batched INSERT', baseline: ctx.shared.rawBatchedPgCpuUsPerRow, better: 'lower' });
  }
  report.add({ metric: `push requests, ${label}`, value: pushRps, unit: 'req/s', baselineLabel: 'upstream quoted push rate', baseline: UPSTREAM_PUSH_RPS, informational: true });
  const recvMs = p.delta.recvCount > 0 ? (p.delta.recvSeconds * 1000) / p.delta.recvCount : Number.NaN;
  report.note(
    `${label}: A accepted all in ${(p.ingestMs / 1000).toFixed(2)} s (${(rows / (p.ingestMs / 1000)).toFixed(0)} rows/s), B complete after ${secs.toFixed(2)} s ` +
      `(lag after last write ${((p.totalMs - p.ingestMs) / 1000).toFixed(2)} s); ${p.delta.pushesOk} ok pushes of ${p.delta.pushesAll}, ` +
      `${(p.delta.rowsAcked / Math.max(p.delta.pushesOk, 1)).toFixed(0)} rows/push; B spent ${recvMs.toFixed(1)} ms per push request ` +
      `(${((p.delta.recvSeconds * 1000) / p.totalMs * 100).toFixed(0)}% of the wall time); CPU over the phase: Postgres ${p.pgCpu.toFixed(1)} s ` +
      `(${((p.pgCpu * 1e6) / rows).toFixed(0)} us/row), A and the load ${p.aCpu.toFixed(1)} s (${((p.aCpu * 1e6) / rows).toFixed(0)} us/row), ` +
      `B ${p.bCpu.toFixed(1)} s (${((p.bCpu * 1e6) / rows).toFixed(0)} us/row), of ${(2 * secs).toFixed(1)} core-seconds`,
  );
}
