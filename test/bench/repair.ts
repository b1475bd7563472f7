import postgres from 'postgres';
import { createDatabase } from '../../src/db/client.js';
import { prepareDatabase } from '../../src/db/migrate.js';
import { PeerClient } from '../../src/federation/client.js';
import { KeyRing } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { validateMemory, type Memory } from '../../src/memory/model.js';
import { formatTimestamp, nowMicros } from '../../src/memory/time.js';
import { createMetrics } from '../../src/metrics.js';
import { repairWithPeer, type RepairDeps, type RepairResult } from '../../src/repair/run.js';
import { applyReplicated } from '../../src/store/replica.js';
import { freePort } from '../helpers/env.js';
import { wireMemory } from '../helpers/peer.js';
import type { BenchContext } from './context.js';
import { loadRows } from './growth.js';
import { PG_ADMIN_URL, REDIS_URL } from './infra.js';
import { startRole } from './role-process.js';
import { now } from './stats.js';

const DIFFERING = 1000;
/** A full copy through since pages of 500 (what re-converging without repair would take). */
const COPY_PAGE = 500;

/**
 * Opt-in section (BENCH_ONLY=repair): anti-entropy repair cost. Node A (this process) holds
 * BENCH_REPAIR_ROWS (default 1,000,000) memories loaded by SQL (the growth loader); node B
 * (a `memfed api` process) holds a copy of the same database. A repair run of identical
 * nodes, then one after 1,000 rows of B were made to differ (500 newer versions and 250
 * tombstones on B, 250 rows only on A), is timed and counted: requests, rows sent. Baselines from
 * the same run: a raw full-table hash scan of A (what one side's top-level digest costs at
 * least), and the requests and rows a full copy in since pages of 500 would take.
 */
export async function repairSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const rows = Number(process.env.BENCH_REPAIR_ROWS ?? ctx.size(1_000_000, 100_000));
  const n = rows.toLocaleString('en-US');
  const nameA = infra.newDatabaseName();
  const nameB = infra.newDatabaseName();
  const urlA = infra.dbUrl(nameA);
  await prepareDatabase(urlA);
  {
    // The loader copies one real memory's shape.
    const seed = createDatabase(urlA, { max: 1 });
    await applyReplicated(seed.db, { memories: [validateMemory(wireMemory({ id: 'bench-seed' }))], tombstones: [], originPeer: null });
    await seed.close();
  }
  const load = postgres(urlA, { max: 2, onnotice: () => {} });
  const tLoad = now();
  await loadRows(load, rows - 1);
  const loadSeconds = (now() - tLoad) / 1000;
  await load.end({ timeout: 5 });
  // B starts as a file-level copy of A (no connection to A may be open).
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  const tClone = now();
  await admin.unsafe(`CREATE DATABASE "${nameB}" TEMPLATE "${nameA}"`);
  const cloneSeconds = (now() - tClone) / 1000;
  await admin.end({ timeout: 5 });

  const keyDir = infra.keyDir();
  await infra.enrol(keyDir, ['bench-repair-a', 'bench-repair-b']);
  const port = await freePort();
  const b = await startRole('api', { NODE_ID: 'bench-repair-b', HTTP_HOST: '127.0.0.1', HTTP_PORT: String(port), DATABASE_URL: infra.dbUrl(nameB), REDIS_URL, QUEUE_PREFIX: infra.prefix('repairb'), FED_KEY_DIR: keyDir, LOG_LEVEL: 'warn' }, port);
  const dbA = createDatabase(urlA, { max: 4 });
  const dbB = createDatabase(infra.dbUrl(nameB), { max: 4 });
  const rawA = infra.rawSql(urlA, 1);
  const keys = await KeyRing.load(keyDir, 'bench-repair-a');
  const client = new PeerClient({ selfId: 'bench-repair-a', signingKey: keys.signingKey, apiKey: '', timeoutMs: 120_000 });
  const deps: RepairDeps = {
    db: dbA.db,
    client,
    nodeId: 'bench-repair-a',
    logger: createLogger('warn'),
    metrics: createMetrics({ nodeId: 'bench-repair-a', role: 'bench', defaultMetrics: false }),
    audit: { record: () => {} },
    policy: null,
    clockSkewMs: 300_000,
    memoryMaxBytes: 262_144,
    // The loaded rows are dated 2025: a grace of ten years keeps one-sided rows sendable.
    tombstoneGraceMs: 3650 * 86_400_000,
    budgetMs: 600_000,
    pushBatchMax: 500,
    pushBatchMaxBytes: 8 * 1024 * 1024,
  };
  const peer = { id: 'bench-repair-b', url: `http://127.0.0.1:${port}` };
  const timedRepair = async (): Promise<RepairResult & { wallMs: number }> => {
    const t = now();
    const r = await repairWithPeer(deps, peer, 'operator');
    return { ...r, wallMs: now() - t };
  };
  try {
    const tScan = now();
    await rawA.unsafe(`SELECT count(*), bit_xor(('x' || left(md5(id || digest), 16))::bit(64)::bigint) FROM memories`);
    const scanMs = now() - tScan;

    const same = await timedRepair();
    if (same.pulled + same.pushed + same.fetched !== 0) throw new Error(`identical nodes exchanged rows: ${JSON.stringify(same)}`);

    // 1,000 differences: 500 newer versions and 250 tombstones on B (A pulls them), 250 rows
    // only A holds (A pushes them), each written through the normal apply path.
    const picked = (await dbB.sql`SELECT id, doc FROM memories WHERE id <> 'bench-seed' ORDER BY md5(id || 'bench') LIMIT 750`) as unknown as Array<{ id: string; doc: Memory }>;
    const stamp = formatTimestamp(nowMicros());
    const newer = picked.slice(0, 500).map((r) => validateMemory({ ...r.doc, content: 'changed on b', updated_at: stamp }));
    await applyReplicated(dbB.db, { memories: newer, tombstones: picked.slice(500).map((r) => ({ id: r.id, deleted_at: stamp })), originPeer: null });
    const onlyA = Array.from({ length: DIFFERING - 750 }, (_, i) => validateMemory(wireMemory({ id: `bench-only-a-${i}`, created_at: stamp, updated_at: stamp })));
    await applyReplicated(dbA.db, { memories: onlyA, tombstones: [], originPeer: null });

    const diff = await timedRepair();
    const sent = diff.fetched + diff.pushed;
    if (diff.pulled !== 750 || diff.pushed !== 250) throw new Error(`1,000 differing rows: expected 750 pulled and 250 pushed, got ${JSON.stringify(diff)}`);
    const again = await timedRepair();
    if (again.requests !== 1 || again.fetched + again.pushed !== 0) throw new Error(`not converged after one repair: ${JSON.stringify(again)}`);

    const copyRequests = Math.ceil(rows / COPY_PAGE);
    report.add({ metric: `repair, ${n} identical rows: wall time`, value: same.wallMs, unit: 'ms', baselineLabel: 'raw full-table hash scan of one side', baseline: scanMs, better: 'lower' });
    report.add({ metric: `repair, ${n} identical rows: requests`, value: same.requests, unit: 'requests', baselineLabel: `full copy in since pages of ${COPY_PAGE}`, baseline: copyRequests, better: 'lower' });
    report.add({ metric: `repair, ${DIFFERING.toLocaleString('en-US')} differing of ${n}: wall time`, value: diff.wallMs, unit: 'ms', baselineLabel: 'raw full-table hash scan of one side', baseline: scanMs, better: 'lower' });
    report.add({ metric: `repair, ${DIFFERING.toLocaleString('en-US')} differing of ${n}: requests`, value: diff.requests, unit: 'requests', baselineLabel: `full copy in since pages of ${COPY_PAGE}`, baseline: copyRequests, better: 'lower' });
    report.add({ metric: `repair, ${DIFFERING.toLocaleString('en-US')} differing of ${n}: rows sent`, value: sent, unit: 'rows', baselineLabel: 'rows that differ', baseline: DIFFERING, better: 'lower' });
    report.note(`repair: ${n} rows loaded by SQL in ${loadSeconds.toFixed(0)} s, B cloned in ${cloneSeconds.toFixed(0)} s; identical: ${same.requests} request(s), ${same.bucketsCompared} buckets; 1,000 differing: ${diff.requests} requests (${diff.bucketsCompared} buckets, ${diff.rowsCompared} row keys compared), ${diff.fetched} rows fetched, ${diff.pulled} applied here, ${diff.pushed} pushed; a third run found them identical in ${again.requests} request (${again.wallMs.toFixed(0)} ms). Bucket digests are computed on demand (a full scan each side per run)`);
  } finally {
    await client.close();
    await dbA.close();
    await dbB.close();
    await b.stop();
  }
}
