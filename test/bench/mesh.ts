import { freePort } from '../helpers/env.js';
import type { BenchContext } from './context.js';
import { memoryInput } from './data.js';
import { metricSum, PG_ADMIN_URL, REDIS_URL, scrape } from './infra.js';
import { cpuSeconds, rssMb } from './proc-cpu.js';
import { startRole, type RoleProcess } from './role-process.js';
import { now, percentile, pool, sleep } from './stats.js';

/** Single POSTs written on every node in the burst. */
const WRITES_PER_NODE = 40;
/** POSTs in flight per node during the burst. */
const IN_FLIGHT = 8;
// Nine nodes share the machine's Postgres (max_connections 100) with the bench and others.
const POOL_MAX = 3;
const CONVERGE_TIMEOUT_MS = 180_000;
const PUSH_ROUTE = '/api/v1/sync/push';

interface MeshNode {
  id: string;
  url: string;
  dbUrl: string;
  role: RoleProcess;
  pid: number;
}

interface MeshRun {
  nodes: number;
  /** From the last acknowledged write until every node held every row. */
  lagMs: number;
  /** From the first write until the last acknowledgement. */
  writeMs: number;
  /** CPU seconds of every node's processes over the burst and convergence, per delivered row. */
  cpuPerRowMs: number;
  /** The same for the Postgres backends serving the nodes' databases (not in cpuPerRowMs). */
  pgCpuPerRowMs: number;
  idleCpuPct: number;
  idleRssMb: number;
  /** Rows the senders pushed (memfed_pushed_rows_total) per row a node needed. */
  pushedPerDelivered: number;
  pushRequests: number;
  /** Mean time a receiver took to answer one push request. */
  recvMsPerPush: number;
  pushFailures: Record<string, number>;
  applied: number;
  noop: number;
  delivery: Delivery;
}

/** Per-row delivery, origin commit to first commit on a receiver (both feeds' committed_at). */
interface Delivery {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Share of rows that reached a receiver first through a third node, not their writer. */
  relayedFirst: number;
}

/**
 * Section: a full mesh of 3, 6 (and 9) `memfed all` processes, each with its own database
 * and prefix and every other node in FED_PEERS, W=1. Every node takes a burst of single
 * POSTs at once; measured: the convergence lag after the last acknowledged write (each
 * node's database counted raw), and the mesh's CPU (every node process, user + system, from
 * /proc) per delivered row (writes x (nodes - 1)). Ratios are against the 3-node mesh of
 * the same run. Idle CPU and RSS per node are sampled before the burst. The largest mesh
 * runs again with PUSH_RELAY=false (every writer pushes to every node, so relaying rows
 * received from peers only sends no-ops), compared with the same mesh at the default.
 * Default run: 3 and 6 nodes; BENCH_QUICK: 3 (no relay variant); 9 too when the section is
 * named (BENCH_ONLY=mesh); BENCH_MESH_SIZES=3,9 picks the sizes.
 */
export async function meshSection(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const explicit = process.env.BENCH_MESH_SIZES?.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n >= 2);
  const sizes = explicit?.length ? explicit : ctx.quick ? [3] : ctx.only.includes('mesh') ? [3, 6, 9] : [3, 6];
  const runs: MeshRun[] = [];
  const measure = async (n: number, label: string, env: Record<string, string> = {}) => {
    const run = await meshRun(ctx, n, env);
    const fails = Object.entries(run.pushFailures).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    report.note(
      `${n} nodes${label}: ${n * WRITES_PER_NODE} writes acknowledged in ${(run.writeMs / 1000).toFixed(2)} s, converged ${(run.lagMs / 1000).toFixed(2)} s after the last; ` +
        `CPU ${run.cpuPerRowMs.toFixed(2)} ms per delivered row (Postgres backends ${run.pgCpuPerRowMs.toFixed(2)} more); pushed ${run.pushedPerDelivered.toFixed(2)} rows per delivered row ` +
        `in ${run.pushRequests} push requests (${run.recvMsPerPush.toFixed(0)} ms each at the receiver; failed pushes: ${fails}); ` +
        `per-row delivery p50 ${run.delivery.p50Ms.toFixed(0)} ms, p99 ${run.delivery.p99Ms.toFixed(0)} ms, max ${run.delivery.maxMs.toFixed(0)} ms, ` +
        `${(run.delivery.relayedFirst * 100).toFixed(0)}% first through a third node; receivers applied ${run.applied}, no-op ${run.noop}; idle node ${run.idleCpuPct.toFixed(1)}% of a core, ${run.idleRssMb.toFixed(0)} MB RSS`,
    );
    return run;
  };
  for (const n of sizes) runs.push(await measure(n, ''));
  const base = runs.find((r) => r.nodes === 3) ?? runs[0]!;
  for (const r of runs) {
    report.add({ metric: `mesh convergence lag, ${r.nodes} nodes`, value: r.lagMs / 1000, unit: 's', baselineLabel: 'goal < 5 s', baseline: 5, better: 'lower', informational: true });
    if (r === base) continue;
    report.add({ metric: `mesh CPU per delivered row, ${r.nodes} nodes`, value: r.cpuPerRowMs, unit: 'ms', baselineLabel: `same, ${base.nodes} nodes (goal within 1.5x)`, baseline: base.cpuPerRowMs, better: 'lower' });
    report.add({ metric: `mesh Postgres CPU per delivered row, ${r.nodes} nodes`, value: r.pgCpuPerRowMs, unit: 'ms', baselineLabel: `same, ${base.nodes} nodes`, baseline: base.pgCpuPerRowMs, better: 'lower', informational: true });
    report.add({ metric: `mesh convergence lag, ${r.nodes} nodes`, value: r.lagMs / 1000, unit: 's', baselineLabel: `same, ${base.nodes} nodes`, baseline: base.lagMs / 1000, better: 'lower', informational: true });
    report.add({ metric: `idle node CPU, ${r.nodes}-node mesh`, value: r.idleCpuPct, unit: '% core', baselineLabel: `same, ${base.nodes}-node mesh`, baseline: base.idleCpuPct, better: 'lower', informational: true });
    report.add({ metric: `idle node RSS, ${r.nodes}-node mesh`, value: r.idleRssMb, unit: 'MB', baselineLabel: `same, ${base.nodes}-node mesh`, baseline: base.idleRssMb, better: 'lower', informational: true });
  }
  const largest = runs.at(-1)!;
  if (ctx.quick || largest === base) return;
  const off = await measure(largest.nodes, ', PUSH_RELAY=false', { PUSH_RELAY: 'false' });
  const same = `same mesh, PUSH_RELAY=true (default)`;
  report.add({ metric: `mesh CPU per delivered row, ${off.nodes} nodes, PUSH_RELAY=false`, value: off.cpuPerRowMs, unit: 'ms', baselineLabel: same, baseline: largest.cpuPerRowMs, better: 'lower' });
  report.add({ metric: `mesh CPU per delivered row, ${off.nodes} nodes, PUSH_RELAY=false`, value: off.cpuPerRowMs, unit: 'ms', baselineLabel: `${base.nodes} nodes, default (goal within 1.5x)`, baseline: base.cpuPerRowMs, better: 'lower' });
  report.add({ metric: `mesh Postgres CPU per delivered row, ${off.nodes} nodes, PUSH_RELAY=false`, value: off.pgCpuPerRowMs, unit: 'ms', baselineLabel: same, baseline: largest.pgCpuPerRowMs, better: 'lower', informational: true });
  report.add({ metric: `mesh convergence lag, ${off.nodes} nodes, PUSH_RELAY=false`, value: off.lagMs / 1000, unit: 's', baselineLabel: same, baseline: largest.lagMs / 1000, better: 'lower', informational: true });
  report.add({ metric: `mesh convergence lag, ${off.nodes} nodes, PUSH_RELAY=false`, value: off.lagMs / 1000, unit: 's', baselineLabel: 'goal < 5 s', baseline: 5, better: 'lower', informational: true });
}

async function meshRun(ctx: BenchContext, size: number, extraEnv: Record<string, string>): Promise<MeshRun> {
  const { infra } = ctx;
  const keyDir = infra.keyDir();
  const ids = Array.from({ length: size }, (_, i) => `bench-mesh${size}-${i}`);
  await infra.enrol(keyDir, ids);
  const ports = await Promise.all(ids.map(() => freePort()));
  const dbNames = ids.map(() => infra.newDatabaseName());
  const dbUrls = dbNames.map((d) => infra.dbUrl(d));
  const admin = infra.rawSql(PG_ADMIN_URL, 1);
  // Backends come and go with the pools: a pid new at the end started inside the window.
  const pgCpu = async () => {
    const pids = (await admin`SELECT pid FROM pg_stat_activity WHERE datname = ANY(${dbNames})`).map((r) => Number(r.pid));
    return cpuSeconds(pids);
  };
  const url = (i: number) => `http://127.0.0.1:${ports[i]}`;
  const nodes: MeshNode[] = [];
  const counters: Array<ReturnType<typeof infra.rawSql>> = [];
  try {
    // Three at a time: nine cold starts at once on two cores outrun the ready deadline.
    await pool(size, 3, async (i) => {
      const env = {
        NODE_ID: ids[i]!,
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(ports[i]),
        WORKER_HTTP_PORT: '0',
        DATABASE_URL: dbUrls[i]!,
        DATABASE_POOL_MAX: String(POOL_MAX),
        REDIS_URL,
        QUEUE_PREFIX: infra.prefix(`mesh${size}n${i}`),
        FED_KEY_DIR: keyDir,
        FED_PEERS: ids.map((id, j) => (j === i ? null : `${id}=${url(j)}`)).filter(Boolean).join(','),
        FED_QUORUM_W: '1',
        LOG_LEVEL: 'warn',
        SHUTDOWN_GRACE_MS: '2000',
        ...extraEnv,
        ...meshEnvOverrides(),
      };
      const role = await startRole('all', env, ports[i]!, 120_000);
      nodes.push({ id: ids[i]!, url: url(i), dbUrl: dbUrls[i]!, role, pid: role.proc.pid! });
    });
    counters.push(...nodes.map((n) => infra.rawSql(n.dbUrl, 1)));
    const count = async (i: number) => ((await counters[i]!`SELECT count(*)::int AS n FROM memories`)[0]?.n as number | undefined) ?? 0;
    let expected = 0;
    const converge = async () => {
      const done = new Set<number>();
      const deadline = now() + CONVERGE_TIMEOUT_MS;
      while (done.size < nodes.length) {
        for (let i = 0; i < nodes.length; i++) if (!done.has(i) && (await count(i)) >= expected) done.add(i);
        if (done.size === nodes.length) break;
        if (now() > deadline) throw new Error(`${size}-node mesh: ${nodes.length - done.size} node(s) short of ${expected} rows after ${CONVERGE_TIMEOUT_MS / 1000} s`);
        await sleep(20);
      }
    };
    const post = async (n: MeshNode, i: number) => {
      const res = await fetch(`${n.url}/api/v1/memories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(memoryInput(i)) }).catch((err: unknown) => {
        throw new Error(`POST ${n.id}: ${String(err)} (exit code ${n.role.proc.exitCode}); stderr: ${n.role.stderrTail()}`);
      });
      const body = await res.text();
      if (res.status !== 201) throw new Error(`POST ${n.id}: ${res.status} ${body.slice(0, 300)}; stderr: ${n.role.stderrTail()}`);
    };

    // Warm-up (JIT, pools, peer connections): one write per node, everywhere.
    await Promise.all(nodes.map((n) => post(n, 0)));
    expected += size;
    await converge();

    // Idle: no writes, schedulers and reconcilers only.
    const pids = nodes.map((n) => n.pid);
    const idleSecs = ctx.size(6, 3);
    const idle0 = await cpuSeconds(pids);
    await sleep(idleSecs * 1000);
    const idle1 = await cpuSeconds(pids);
    const idleCpuPct = (pids.reduce((a, p) => a + (idle1.get(p)! - idle0.get(p)!), 0) / pids.length / idleSecs) * 100;
    const idleRssMb = (await Promise.all(pids.map(rssMb))).reduce((a, b) => a + b, 0) / pids.length;

    const before = await Promise.all(nodes.map((n) => scrape(n.url)));
    const cpu0 = await cpuSeconds(pids);
    const pg0 = await pgCpu();
    const t0 = now();
    let lastAck = t0;
    await Promise.all(
      nodes.map((n) =>
        pool(WRITES_PER_NODE, IN_FLIGHT, async (i) => {
          await post(n, i + 1);
          lastAck = Math.max(lastAck, now());
        }),
      ),
    );
    expected += size * WRITES_PER_NODE;
    await converge();
    const tEnd = now();
    const cpu1 = await cpuSeconds(pids);
    const pg1 = await pgCpu();
    const pgSecs = [...pg1].reduce((a, [pid, secs]) => a + secs - (pg0.get(pid) ?? 0), 0);
    const after = await Promise.all(nodes.map((n) => scrape(n.url)));
    const delta = (name: string, labels: Record<string, string> = {}) => nodes.reduce((a, _n, i) => a + metricSum(after[i]!, name, labels) - metricSum(before[i]!, name, labels), 0);
    const delivered = size * WRITES_PER_NODE * (size - 1);
    const delivery = await deliveryOf(nodes.map((n, i) => ({ id: n.id, sql: counters[i]! })));
    const cpu = pids.reduce((a, p) => a + (cpu1.get(p)! - cpu0.get(p)!), 0);
    const pushFailures: Record<string, number> = {};
    for (const cls of ['transient', 'throttle', 'unenrolled', 'permanent']) {
      const v = delta('memfed_push_outcomes_total', { class: cls });
      if (v > 0) pushFailures[cls] = v;
    }
    return {
      nodes: size,
      lagMs: tEnd - lastAck,
      writeMs: lastAck - t0,
      cpuPerRowMs: (cpu * 1000) / delivered,
      pgCpuPerRowMs: (pgSecs * 1000) / delivered,
      idleCpuPct,
      idleRssMb,
      pushedPerDelivered: delta('memfed_pushed_rows_total') / delivered,
      pushRequests: delta('memfed_push_outcomes_total', { class: 'ok' }),
      recvMsPerPush: (delta('memfed_http_request_duration_seconds_sum', { route: PUSH_ROUTE }) * 1000) / Math.max(delta('memfed_http_request_duration_seconds_count', { route: PUSH_ROUTE }), 1),
      pushFailures,
      applied: delta('memfed_applied_rows_total', { status: 'applied' }),
      noop: delta('memfed_applied_rows_total', { status: 'noop' }),
      delivery,
    };
  } finally {
    // Closed here, not at cleanup: the next, larger mesh needs the connections.
    await Promise.all([admin, ...counters].map((c) => c.end({ timeout: 5 })));
    await Promise.all(nodes.map((n) => n.role.stop()));
  }
}

async function deliveryOf(nodes: Array<{ id: string; sql: ReturnType<BenchContext['infra']['rawSql']> }>): Promise<Delivery> {
  const feeds = await Promise.all(
    nodes.map(async (n) => ({ id: n.id, rows: (await n.sql`SELECT memory_id, origin_peer, (extract(epoch FROM committed_at) * 1000)::float8 AS ms FROM change_feed WHERE op = 'upsert'`) as unknown as Array<{ memory_id: string; origin_peer: string | null; ms: number }> })),
  );
  const written = new Map<string, { by: string; ms: number }>();
  for (const f of feeds) for (const r of f.rows) if (r.origin_peer === null) written.set(r.memory_id, { by: f.id, ms: r.ms });
  const ms: number[] = [];
  let relayed = 0;
  for (const f of feeds) {
    for (const r of f.rows) {
      const w = r.origin_peer === null ? undefined : written.get(r.memory_id);
      if (!w) continue;
      ms.push(r.ms - w.ms);
      if (r.origin_peer !== w.by) relayed++;
    }
  }
  return { p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: percentile(ms, 100), relayedFirst: relayed / Math.max(ms.length, 1) };
}

/** BENCH_MESH_ENV='K=V,K=V': extra settings for every mesh node (profiling a setting). */
function meshEnvOverrides(): Record<string, string> {
  const raw = process.env.BENCH_MESH_ENV ?? '';
  return Object.fromEntries(
    raw
      .split(',')
      .map((kv) => kv.trim())
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}
