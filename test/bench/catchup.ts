import { loadConfig, type PeerConfig } from '../../src/config.js';
import { createDatabase } from '../../src/db/client.js';
import { CATCHUP_PAGE_LIMIT, pullFromPeer, type CatchupDeps } from '../../src/federation/catchup.js';
import { PeerClient } from '../../src/federation/client.js';
import { KeyRing } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { insertMemories } from '../../src/store/memories.js';
import type { BenchContext } from './context.js';
import { newMemories } from './data.js';
import { now } from './stats.js';

const SRC = 'bench-catchup-src';
const PULLER = 'bench-catchup-puller';
const SEED_BATCH = 1000;
// As the catch-up worker asks.
const PAGE_LIMIT = CATCHUP_PAGE_LIMIT;

/**
 * Section: catch-up. An empty node pulls everything a peer holds, through pullFromPeer
 * (signed GET /sync/since, admission, LWW apply, watermark in the applying transaction)
 * against a real memfed node: once by the memfed cursor, once by upstream's `since` form.
 * Compared with raw batched INSERTs (the store section's baseline, same run).
 */
export async function catchupSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const rows = ctx.size(100_000, 20_000);
  const keyDir = infra.keyDir();
  await infra.enrol(keyDir, [SRC, PULLER]);
  const src = await infra.startNode({ id: SRC, keyDir });
  const srcDb = createDatabase(src.dbUrl, { max: 4 });
  try {
    const seedT = now();
    const docs = newMemories(rows);
    for (let i = 0; i < rows; i += SEED_BATCH) await insertMemories(srcDb.db, docs.slice(i, i + SEED_BATCH));
    report.note(`seeded ${rows} rows on the source in ${((now() - seedT) / 1000).toFixed(1)} s`);
    // Planner statistics, as autovacuum keeps them on a serving node: without any, the
    // since form's page query is planned as a scan and sort of the whole table per page.
    await srcDb.sql`ANALYZE`;
  } finally {
    await srcDb.close();
  }
  const keys = await KeyRing.load(keyDir, PULLER);
  const client = new PeerClient({ selfId: PULLER, signingKey: keys.signingKey, apiKey: '', timeoutMs: 60_000 });
  const peer: PeerConfig = { id: SRC, url: src.url };
  const config = loadConfig({ NODE_ID: PULLER, FED_KEY_DIR: keyDir });

  for (const mode of ['cursor', 'since'] as const) {
    const puller = await infra.migratedDatabase(10);
    // An ai-memory peer is pulled by `since`: a watermark holding only `since` selects that form.
    if (mode === 'since') await puller.database.sql`INSERT INTO peer_watermarks (peer_id, since) VALUES (${SRC}, '1970-01-01T00:00:00.000000+00:00')`;
    const deps: CatchupDeps = {
      db: puller.database.db,
      client,
      logger: createLogger('silent'),
      metrics: createMetrics({ nodeId: PULLER, role: 'bench', defaultMetrics: false }),
      pageLimit: PAGE_LIMIT,
      policy: null,
      audit: { record: () => {} },
      clockSkewMs: config.federation.clockSkewMs,
      memoryMaxBytes: config.limits.memoryMaxBytes,
    };
    const t = now();
    let pages = 0;
    for (let runs = 0; ; runs++) {
      const r = await pullFromPeer(deps, peer, 600_000);
      pages += r.pages;
      if (r.mode !== mode) throw new Error(`catch-up used the ${r.mode} form, expected ${mode}`);
      if (r.failedRow) throw new Error(`catch-up halted at ${JSON.stringify(r.failedRow)}`);
      if (r.caughtUp) break;
      if (runs > 1000) throw new Error('catch-up never caught up');
    }
    const secs = (now() - t) / 1000;
    const [{ held }] = (await puller.database.sql`SELECT count(*)::int AS held FROM memories`) as unknown as [{ held: number }];
    if (held !== rows) throw new Error(`puller holds ${held} of ${rows} rows after a ${mode} catch-up`);
    const rate = rows / secs;
    const label = `catch-up of ${rows} rows by ${mode === 'cursor' ? 'memfed cursor' : 'upstream since'}`;
    if (ctx.shared.rawBatchedRowsPerSec !== undefined) report.add({ metric: label, value: rate, unit: 'rows/s', baselineLabel: 'raw batched INSERT (PG ceiling)', baseline: ctx.shared.rawBatchedRowsPerSec });
    else report.note(`${label}: ${rate.toFixed(0)} rows/s (run with the store section for the raw batched baseline)`);
    report.note(`${label}: ${pages} pages of up to ${PAGE_LIMIT} in ${secs.toFixed(1)} s`);
  }
}
