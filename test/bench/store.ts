import type postgres from 'postgres';
import type { Memory } from '../../src/memory/model.js';
import { formatTimestamp, parseTimestamp } from '../../src/memory/time.js';
import { insertMemories, memoryRow } from '../../src/store/memories.js';
import { applyReplicated } from '../../src/store/replica.js';
import type { BenchContext } from './context.js';
import { newMemories } from './data.js';
import { median, now, pool, processCpuSeconds } from './stats.js';

const IN_FLIGHT = 10;
const BATCH = 500;

/** The memories table's columns, without its secondary indexes and without a change feed. */
const PLAIN_TABLE = `CREATE TABLE bench_plain (
  id text PRIMARY KEY, namespace text NOT NULL, tier text NOT NULL, title text NOT NULL, agent_id text,
  tags text[] NOT NULL, created_at timestamptz(6) NOT NULL, updated_at timestamptz(6) NOT NULL,
  expires_at timestamptz(6), deleted_at timestamptz(6), version integer NOT NULL, digest text NOT NULL, doc jsonb NOT NULL)`;

type PlainRow = Record<string, string | number | string[] | null | postgres.Parameter>;

/**
 * Section 3: the store. insertMemories (memory + change-feed row in one transaction),
 * single rows with 10 in flight and 500 per call, and applyReplicated (LWW upsert) in
 * 500-row batches, against raw postgres.js INSERTs of the same rows into a plain table.
 */
export async function storeSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const singles = ctx.size(2000, 500); // per repetition
  const batches = ctx.size(20, 6); // of 500, per repetition
  const reps = 3;
  const { url, database } = await infra.migratedDatabase(IN_FLIGHT);
  const sql = infra.rawSql(url, IN_FLIGHT);
  await sql.unsafe(PLAIN_TABLE);
  const plain = (m: Memory): PlainRow => {
    const r = memoryRow(m);
    return {
      id: r.id, namespace: r.namespace, tier: r.tier, title: r.title, agent_id: r.agentId, tags: r.tags, created_at: r.createdAt,
      updated_at: r.updatedAt, expires_at: r.expiresAt, deleted_at: r.deletedAt, version: r.version, digest: r.digest, doc: sql.json(r.doc as postgres.JSONValue),
    };
  };

  const singleRate = async (rows: number, insert: (i: number) => Promise<unknown>) => {
    const t = now();
    await pool(rows, IN_FLIGHT, async (i) => void (await insert(i)));
    return (rows * 1000) / (now() - t);
  };
  // Postgres CPU per row of each batched kind, summed over the repetitions.
  const pgCpu = { raw: 0, rawRows: 0 };
  const batchRate = async (count: number, insert: (b: number) => Promise<unknown>, cpu?: 'raw') => {
    const cpu0 = processCpuSeconds('postgres');
    const t = now();
    for (let b = 0; b < count; b++) await insert(b);
    const rate = (count * BATCH * 1000) / (now() - t);
    if (cpu) {
      pgCpu.raw += processCpuSeconds('postgres') - cpu0;
      pgCpu.rawRows += count * BATCH;
    }
    return rate;
  };

  // Warm-up: pools connected, statements prepared, JIT warm.
  const warm = newMemories(1000);
  await singleRate(200, (i) => insertMemories(database.db, [warm[i]!]));
  await singleRate(200, (i) => sql`INSERT INTO bench_plain ${sql(plain(warm[200 + i]!))}`);
  await insertMemories(database.db, warm.slice(400, 900));
  await applyReplicated(database.db, { memories: newMemories(BATCH), tombstones: [], originPeer: 'bench-peer' });
  await sql`INSERT INTO bench_plain ${sql(newMemories(BATCH).map(plain))}`;

  const r = { mfSingle: [] as number[], rawSingle: [] as number[], mfBatch: [] as number[], rawBatch: [] as number[], apply: [] as number[] };
  for (let rep = 0; rep < reps; rep++) {
    // Rows (and the raw rows' digests and JSON) are built before the clock starts; memfed's
    // own row building (digest, drizzle mapping) is part of what it is measured on.
    const mfRows = newMemories(singles);
    const rawRows = newMemories(singles).map(plain);
    r.mfSingle.push(await singleRate(singles, (i) => insertMemories(database.db, [mfRows[i]!])));
    r.rawSingle.push(await singleRate(singles, (i) => sql`INSERT INTO bench_plain ${sql(rawRows[i]!)}`));
    const mfBatches = Array.from({ length: batches }, () => newMemories(BATCH));
    const rawBatches = Array.from({ length: batches }, () => newMemories(BATCH).map(plain));
    const applyBatches = Array.from({ length: batches }, () => newMemories(BATCH));
    r.mfBatch.push(await batchRate(batches, (b) => insertMemories(database.db, mfBatches[b]!)));
    r.rawBatch.push(await batchRate(batches, (b) => sql`INSERT INTO bench_plain ${sql(rawBatches[b]!)}`, 'raw'));
    r.apply.push(await batchRate(batches, (b) => applyReplicated(database.db, { memories: applyBatches[b]!, tombstones: [], originPeer: 'bench-peer' })));
  }

  const rawBatch = median(r.rawBatch);
  ctx.shared.rawBatchedRowsPerSec = rawBatch;
  ctx.shared.rawBatchedPgCpuUsPerRow = (pgCpu.raw * 1e6) / pgCpu.rawRows;
  report.add({ metric: `insertMemories 1 row, ${IN_FLIGHT} in flight`, value: median(r.mfSingle), unit: 'rows/s', baselineLabel: `raw INSERT 1 row, ${IN_FLIGHT} in flight`, baseline: median(r.rawSingle) });
  report.add({ metric: `insertMemories ${BATCH}/call`, value: median(r.mfBatch), unit: 'rows/s', baselineLabel: `raw INSERT ${BATCH}/statement`, baseline: rawBatch });
  report.add({ metric: `applyReplicated ${BATCH}/call (new ids)`, value: median(r.apply), unit: 'rows/s', baselineLabel: `raw INSERT ${BATCH}/statement`, baseline: rawBatch });

  // The update path of the LWW upsert: every row exists and the incoming version is newer.
  const existing = newMemories(BATCH * batches);
  for (let b = 0; b < batches; b++) await applyReplicated(database.db, { memories: existing.slice(b * BATCH, (b + 1) * BATCH), tombstones: [], originPeer: 'bench-peer' });
  const newer = existing.map((m) => ({ ...m, version: m.version + 1, updated_at: bump(m.updated_at), title: `${m.title} v2` }));
  const update = await batchRate(batches, (b) => applyReplicated(database.db, { memories: newer.slice(b * BATCH, (b + 1) * BATCH), tombstones: [], originPeer: 'bench-peer' }));
  report.add({ metric: `applyReplicated ${BATCH}/call (newer versions)`, value: update, unit: 'rows/s', baselineLabel: `raw INSERT ${BATCH}/statement`, baseline: rawBatch });
  report.note(`median of ${reps} runs (${singles} single rows, ${batches}x${BATCH} batched rows each); pools of ${IN_FLIGHT}; the plain table has only its primary key, memories has 4 more indexes (one GIN) and a change-feed row per write`);
}

/** One second later, in wire form. */
const bump = (ts: string) => formatTimestamp(parseTimestamp(ts)! + 1_000_000);
