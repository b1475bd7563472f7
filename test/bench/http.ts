import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import type postgres from 'postgres';
import { prepareDatabase } from '../../src/db/migrate.js';
import { memoryRow } from '../../src/store/memories.js';
import { freePort } from '../helpers/env.js';
import type { BenchContext } from './context.js';
import { newMemories } from './data.js';
import { REDIS_URL } from './infra.js';
import { startRole, type RoleProcess } from './role-process.js';
import { now, pool } from './stats.js';
import { httpOperation, openLoop, type LoadResult, type Outcome } from './open-loop.js';

const CONNECTIONS = 32;
const BODY = JSON.stringify({ title: 'bench write', content: 'a memory written by the HTTP bench', namespace: 'bench/http', tags: ['bench', 'http'], metadata: { source: 'bench' } });
const P99_TARGET_MS = 25;
const OPEN_LOOP_WARMUP_S = 2;

/**
 * Section: the single-memory write path over HTTP, driven by autocannon (a fetch loop
 * saturates before the server does). A `memfed api` process of its own, W=1, no peers:
 * closed-loop throughput at 32 connections against raw single-row INSERTs at 32 in flight
 * on the same Postgres, then latency at a fixed arrival rate of half that throughput.
 */
export async function httpSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const seconds = ctx.size(10, 4);
  await withWarmApi(ctx, 'http', async ({ api, target, url }) => {
    const closed = await load(target, seconds, {});
    const rss = rssMiB(api.proc);

    const sql = infra.rawSql(url, CONNECTIONS);
    await sql.unsafe(`CREATE TABLE bench_http_plain (LIKE memories INCLUDING DEFAULTS)`);
    await sql.unsafe('ALTER TABLE bench_http_plain ADD PRIMARY KEY (id)');
    const rawRate = await rawInserts(sql, seconds);

    report.add({ metric: `POST /memories, W=1, ${CONNECTIONS} connections`, value: closed.rate, unit: 'writes/s', baselineLabel: `raw INSERT 1 row, ${CONNECTIONS} in flight`, baseline: rawRate });
    // The HTTP stack alone (Hono on @hono/node-server, the same middleware, no body, no
    // database): what a request costs before memfed does anything.
    const stack = await load(target.replace(/\/memories$/, '/health'), seconds, { method: 'GET' });
    report.add({ metric: `POST /memories, W=1, ${CONNECTIONS} connections`, value: closed.rate, unit: 'req/s', baselineLabel: 'GET /api/v1/health, same process (HTTP stack)', baseline: stack.rate, informational: true });
    const perRequestUs = (rate: number) => 1e6 / rate;
    report.note(`HTTP stack: GET /api/v1/health ${stack.rate.toFixed(0)} req/s (p99 ${stack.p99} ms); per request at saturation: POST ${perRequestUs(closed.rate).toFixed(0)} us, health ${perRequestUs(stack.rate).toFixed(0)} us, so memfed's own work is about ${(perRequestUs(closed.rate) - perRequestUs(stack.rate)).toFixed(0)} us of a POST`);
    const half = Math.max(1, Math.round(closed.rate / 2));
    const fixed = await load(target, seconds, { overallRate: half });
    // The database's own latency at the same arrival rate: single-row INSERTs (autocommit),
    // evenly spaced, on CONNECTIONS connections.
    const insert = rawInsert(sql, 'open');
    const rawFixed = await openLoop(seconds, half, () => insert().then((): Outcome => 'ok'));
    report.add({ metric: `POST p99 at ${half} writes/s (half of the above)`, value: fixed.p99, unit: 'ms', baselineLabel: 'target p99', baseline: P99_TARGET_MS, better: 'lower' });
    report.add({ metric: `POST p99 at ${half} writes/s`, value: fixed.p99, unit: 'ms', baselineLabel: 'raw INSERT 1 row p99, same arrival rate', baseline: rawFixed.p99, better: 'lower', informational: true });
    report.add({ metric: 'POST p50 at the same rate', value: fixed.p50, unit: 'ms', baselineLabel: 'raw INSERT 1 row p50, same arrival rate', baseline: rawFixed.p50, better: 'lower', informational: true });
    report.note(
      `closed loop: ${closed.requests} POSTs in ${seconds} s, p50/p99 ${closed.p50}/${closed.p99} ms, ${closed.non2xx} non-2xx, ${closed.errors} errors; ` +
        `fixed rate (open loop, evenly spaced, latency from each request's due time): ${fixed.requests} POSTs, ${fixed.non2xx} non-2xx, p50/p99 ${fixed.p50}/${fixed.p99} ms; raw INSERT at that rate p50/p99 ${rawFixed.p50}/${rawFixed.p99} ms; the driver's own event-loop delay p99/max ${fixed.driverDelay?.p99}/${fixed.driverDelay?.max} ms (raw INSERTs: ${rawFixed.driverDelay?.p99}/${rawFixed.driverDelay?.max} ms); API process RSS ${rss} MiB after the closed loop; raw baseline: a plain copy of the memories table (primary key only, no feed)`,
    );
    if (closed.non2xx > 0 || closed.errors > 0 || fixed.non2xx > 0 || fixed.errors > 0 || rawFixed.errors > 0) throw new Error(`write path answered ${closed.non2xx + fixed.non2xx} non-2xx and ${closed.errors + fixed.errors} errors; raw INSERTs at the fixed rate: ${rawFixed.errors} errors`);
  });
}

/**
 * Opt-in section (BENCH_ONLY=soak): the same API process under a steady write load (half
 * the closed-loop throughput) for BENCH_SOAK_SECONDS (default 300), its RSS sampled every
 * 10 s; reports the first and last samples and the least-squares trend (MiB per minute).
 */
export async function soakSection(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const seconds = Number(process.env.BENCH_SOAK_SECONDS ?? 300);
  await withWarmApi(ctx, 'soak', async ({ api, target }) => {
    const rate = Math.max(1, Math.round((await load(target, 5, {})).rate / 2));
    const samples: Array<{ t: number; rss: number }> = [];
    const t0 = now();
    const sampler = setInterval(() => samples.push({ t: (now() - t0) / 60_000, rss: rssMiB(api.proc) }), 10_000);
    const run = await load(target, seconds, { overallRate: rate }).finally(() => clearInterval(sampler));
    const slope = trend(samples);
    const first = samples[0]?.rss ?? Number.NaN;
    const last = samples.at(-1)?.rss ?? Number.NaN;
    report.add({ metric: `API RSS after ${seconds} s at ${rate} writes/s`, value: last, unit: 'MiB', baselineLabel: 'RSS at the first sample', baseline: first, better: 'lower' });
    report.note(`soak: ${run.requests} POSTs (${run.non2xx} non-2xx, ${run.errors} errors), p99 ${run.p99} ms; RSS samples (MiB) ${samples.map((x) => x.rss).join(' ')}; trend ${slope.toFixed(2)} MiB/min`);
  });
}

/** Least-squares slope of rss over t (MiB per minute). */
function trend(samples: Array<{ t: number; rss: number }>): number {
  const n = samples.length;
  if (n < 2) return Number.NaN;
  const mt = samples.reduce((a, x) => a + x.t, 0) / n;
  const mr = samples.reduce((a, x) => a + x.rss, 0) / n;
  const cov = samples.reduce((a, x) => a + (x.t - mt) * (x.rss - mr), 0);
  const varT = samples.reduce((a, x) => a + (x.t - mt) ** 2, 0);
  return cov / varT;
}

/** A fresh database and a `memfed api` process on it, warmed up (JIT, pools, prepared statements), for `run`. */
async function withWarmApi(ctx: BenchContext, tag: string, run: (a: { api: { proc: ChildProcess }; target: string; url: string }) => Promise<void>): Promise<void> {
  const { infra } = ctx;
  const url = infra.dbUrl(infra.newDatabaseName());
  await prepareDatabase(url);
  const port = await freePort();
  const api = await startApi(url, port, infra.prefix(tag), infra.keyDir());
  try {
    const target = `http://127.0.0.1:${port}/api/v1/memories`;
    await load(target, 3, {});
    await run({ api, target, url });
  } finally {
    await api.stop();
  }
}

/**
 * One memory POSTed per request at `url`: closed loop with autocannon (`connections` at
 * once, throughput), or with `overallRate` at that fixed arrival rate, evenly spaced
 * (latency; see open-loop.ts for why not autocannon's own rate). `method: 'GET'` sends no body.
 */
export async function load(url: string, seconds: number, opts: { overallRate?: number; connections?: number; method?: 'POST' | 'GET' }): Promise<LoadResult> {
  const { connections = CONNECTIONS, method = 'POST', overallRate } = opts;
  const request = method === 'POST' ? { method, headers: { 'content-type': 'application/json' }, body: BODY } : { method };
  if (overallRate !== undefined) {
    const http = httpOperation(url, request);
    try {
      // The sockets the rate needs are opened in a first unmeasured stretch: a new
      // connection per request in flight would otherwise cost the first second.
      await openLoop(OPEN_LOOP_WARMUP_S, overallRate, http.operation);
      return await openLoop(seconds, overallRate, http.operation);
    } finally {
      http.close();
    }
  }
  const r = await autocannon({ url, ...request, connections, duration: seconds });
  return { rate: r.requests.total / seconds, requests: r.requests.total, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

/** One single-row INSERT of the memories row shape into bench_http_plain per call, each with an id of its own. */
function rawInsert(sql: postgres.Sql, tag: string): () => Promise<void> {
  const rows = newMemories(2000).map((m) => memoryRow(m));
  let i = 0;
  return async () => {
    const r = rows[i++ % rows.length]!;
    const id = `${r.id}-${tag}${i}`;
    await sql`INSERT INTO bench_http_plain (id, namespace, tier, title, agent_id, tags, created_at, updated_at, expires_at, version, digest, doc)
      VALUES (${id}, ${r.namespace}, ${r.tier}, ${r.title}, ${r.agentId}, ${r.tags}, ${r.createdAt}, ${r.updatedAt}, ${r.expiresAt}, ${r.version}, ${r.digest}, ${sql.json(r.doc as postgres.JSONValue)})`;
  };
}

/** Single-row INSERTs of the same row shape, CONNECTIONS in flight, for `seconds`. */
async function rawInserts(sql: postgres.Sql, seconds: number): Promise<number> {
  const insert = rawInsert(sql, 'closed');
  await pool(500, CONNECTIONS, insert);
  const t = now();
  let n = 0;
  const end = t + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (now() < end) {
        await insert();
        n++;
      }
    }),
  );
  return (n * 1000) / (now() - t);
}

function rssMiB(proc: ChildProcess): number {
  try {
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
  } catch {
    return Number.NaN;
  }
}

async function startApi(databaseUrl: string, port: number, prefix: string, keyDir: string): Promise<RoleProcess> {
  return startRole('api', { NODE_ID: 'bench-http', HTTP_HOST: '127.0.0.1', HTTP_PORT: String(port), DATABASE_URL: databaseUrl, REDIS_URL, QUEUE_PREFIX: prefix, FED_KEY_DIR: keyDir, LOG_LEVEL: 'warn' }, port);
}
