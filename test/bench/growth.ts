import type postgres from 'postgres';
import { newNonce } from '../../src/federation/signing.js';
import { prepareDatabase } from '../../src/db/migrate.js';
import { formatTimestamp } from '../../src/memory/time.js';
import { encodeCursor } from '../../src/store/feed.js';
import { freePort } from '../helpers/env.js';
import { FakePeer } from '../helpers/peer.js';
import type { BenchContext } from './context.js';
import { newMemories } from './data.js';
import { load } from './http.js';
import { REDIS_URL } from './infra.js';
import { startRole } from './role-process.js';
import { median, now } from './stats.js';

const PAGE = 500;
const LIST_PAGE = 50;
const SAMPLES = 30;
const LOAD_CHUNK = 100_000;
const GROWTH_TARGET = 1.5;

interface Figures {
  writes: number;
  sincePageMs: number;
  cursorPageMs: number;
  listPageMs: number;
  pushBatchMs: number;
}

/**
 * Opt-in section (BENCH_ONLY=growth): does memfed slow down as data accumulates? One
 * `memfed api` process measures the write path (autocannon, closed loop), a signed
 * `since` page and a cursor page of 500 recent rows, a list page, and receiving a signed
 * 500-row push, first on a nearly empty database, then with BENCH_GROWTH_ROWS (default
 * 1,000,000) memories and their change-feed rows loaded by SQL and analyzed. Each figure
 * with data is reported against the same figure without (goal: within 1.5x).
 */
export async function growthSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const rows = Number(process.env.BENCH_GROWTH_ROWS ?? ctx.size(1_000_000, 100_000));
  const seconds = ctx.size(6, 3);
  const url = infra.dbUrl(infra.newDatabaseName());
  await prepareDatabase(url);
  const keyDir = infra.keyDir();
  const sender = await new FakePeer('bench-sender').init();
  sender.enrolIn(keyDir);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const api = await startRole('api', { NODE_ID: 'bench-growth', HTTP_HOST: '127.0.0.1', HTTP_PORT: String(port), DATABASE_URL: url, REDIS_URL, QUEUE_PREFIX: infra.prefix('growth'), FED_KEY_DIR: keyDir, LOG_LEVEL: 'warn' }, port);
  const sql = infra.rawSql(url, 2);
  let pushed = 0;

  const signedGet = async (query: string) => {
    const nonce = newNonce();
    const path = '/api/v1/sync/since';
    const t = now();
    const res = await fetch(`${base}${path}?${query}`, { headers: { 'x-peer-id': sender.id, 'x-memory-nonce': nonce, 'x-memory-sig': sender.signGet(path, query, nonce) } });
    const body = (await res.json()) as { count?: number; memories?: unknown[] };
    if (res.status !== 200 || (body.memories?.length ?? 0) < PAGE) throw new Error(`GET since ${query}: ${res.status}, ${body.memories?.length ?? 0} rows`);
    return now() - t;
  };
  const timedGet = async (p: string) => {
    const t = now();
    const res = await fetch(`${base}${p}`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET ${p}: ${res.status}`);
    return now() - t;
  };
  const push = async () => {
    const req = sender.push({ sender_agent_id: sender.id, memories: newMemories(PAGE, 10_000_000 + pushed) });
    pushed += PAGE;
    const t = now();
    const res = await fetch(`${base}/api/v1/sync/push`, { method: 'POST', headers: req.headers, body: req.body });
    const body = (await res.json()) as { applied?: number };
    if (res.status !== 200 || body.applied !== PAGE) throw new Error(`push: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    return now() - t;
  };

  const measure = async (): Promise<Figures> => {
    const writes = (await load(`${base}/api/v1/memories`, seconds, {})).rate;
    // A page of the most recent rows, as a follower asks for it.
    const [{ since }] = (await sql`SELECT updated_at AS since FROM memories ORDER BY updated_at DESC, id DESC OFFSET ${PAGE} LIMIT 1`) as unknown as [{ since: string }];
    const sinceQuery = `since=${encodeURIComponent(formatTimestamp(Date.parse(since) * 1000))}&limit=${PAGE}`;
    const [pos] = (await sql`SELECT txid::text AS txid, seq::text AS seq FROM change_feed ORDER BY txid DESC, seq DESC OFFSET ${PAGE} LIMIT 1`) as unknown as [{ txid: string; seq: string }];
    const cursorQuery = `cursor=${encodeURIComponent(encodeCursor(pos))}&limit=${PAGE}`;
    const samples = async (f: () => Promise<number>, n = SAMPLES) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(await f());
      return median(out);
    };
    return {
      writes,
      sincePageMs: await samples(() => signedGet(sinceQuery)),
      cursorPageMs: await samples(() => signedGet(cursorQuery)),
      listPageMs: await samples(() => timedGet(`/api/v1/memories?limit=${LIST_PAGE}`)),
      pushBatchMs: await samples(push, 10),
    };
  };

  try {
    await load(`${base}/api/v1/memories`, 2, {});
    const empty = await measure();
    const tLoad = now();
    await loadRows(sql, rows);
    const loadSeconds = (now() - tLoad) / 1000;
    const loaded = await measure();
    const n = rows.toLocaleString('en-US');
    report.add({ metric: `POST /memories with ${n} stored`, value: loaded.writes, unit: 'writes/s', baselineLabel: 'the same, nearly empty', baseline: empty.writes });
    report.add({ metric: `since page (${PAGE} recent rows) with ${n} stored`, value: loaded.sincePageMs, unit: 'ms', baselineLabel: 'the same, nearly empty', baseline: empty.sincePageMs, better: 'lower' });
    report.add({ metric: `cursor page (${PAGE} recent rows) with ${n} stored`, value: loaded.cursorPageMs, unit: 'ms', baselineLabel: 'the same, nearly empty', baseline: empty.cursorPageMs, better: 'lower' });
    report.add({ metric: `list page (${LIST_PAGE}) with ${n} stored`, value: loaded.listPageMs, unit: 'ms', baselineLabel: 'the same, nearly empty', baseline: empty.listPageMs, better: 'lower' });
    report.add({ metric: `receive a ${PAGE}-row push with ${n} stored`, value: loaded.pushBatchMs, unit: 'ms', baselineLabel: 'the same, nearly empty', baseline: empty.pushBatchMs, better: 'lower' });
    report.note(`growth: ${n} memories and feed rows loaded by SQL in ${loadSeconds.toFixed(0)} s (then VACUUM ANALYZE); goal: every figure within ${GROWTH_TARGET}x of the nearly empty one; medians of ${SAMPLES} pages and 10 pushes`);
  } finally {
    await api.stop();
  }
}

/**
 * `rows` memories shaped like a real one (namespaces spread over 100, times in the past,
 * so new writes are the newest), each with its change-feed row, in chunks, then analyzed.
 */
export async function loadRows(sql: postgres.Sql, rows: number): Promise<void> {
  const [{ id: template }] = (await sql`SELECT id FROM memories ORDER BY updated_at LIMIT 1`) as unknown as [{ id: string }];
  for (let from = 0; from < rows; from += LOAD_CHUNK) {
    const to = Math.min(rows, from + LOAD_CHUNK) - 1;
    await sql`
      WITH g AS (
        SELECT i, gen_random_uuid()::text AS id, timestamptz '2025-01-01 00:00:00+00' + i * interval '10 milliseconds' AS ts
        FROM generate_series(${from}::int, ${to}::int) AS i
      ), ins AS (
        INSERT INTO memories (id, namespace, tier, title, agent_id, tags, created_at, updated_at, expires_at, version, digest, doc)
        SELECT g.id, 'bench/ns-' || (g.i % 100), t.tier, t.title || ' ' || g.i, t.agent_id, t.tags, g.ts, g.ts, NULL, 1, md5(g.id), jsonb_set(t.doc, '{id}', to_jsonb(g.id))
        FROM g, memories t WHERE t.id = ${template}
        RETURNING id
      )
      INSERT INTO change_feed (memory_id, op) SELECT id, 'upsert' FROM ins`;
  }
  await sql.unsafe('VACUUM ANALYZE memories');
  await sql.unsafe('VACUUM ANALYZE change_feed');
}
