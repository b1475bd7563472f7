import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullFromPeer, type CatchupDeps } from '../../src/federation/catchup.js';
import { PeerClient } from '../../src/federation/client.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { getWatermark } from '../../src/store/watermarks.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * Issue 12, point 3 (second half): rows an ai-memory 0.7 peer serves that its own
 * validate_memory accepts, and that memfed used to refuse (so catch-up halted at them), now
 * apply on a pull and are stored exactly as served.
 */
describe('catch-up from an upstream peer: rows upstream accepts apply as served', () => {
  let db: TestDatabase;
  let upstream: UpstreamReceiver;
  let deps: CatchupDeps;

  beforeAll(async () => {
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'rules-puller');
    const keys = await KeyRing.load(keyDir, 'rules-puller');
    db = await createTestDatabase();
    upstream = await new UpstreamReceiver('ai-rules', keyDir).start();
    deps = {
      db: db.database.db,
      client: new PeerClient({ selfId: 'rules-puller', signingKey: keys.signingKey, apiKey: '', timeoutMs: 20_000 }),
      logger: createLogger('silent'),
      metrics: createMetrics({ nodeId: 'rules-puller', role: 'test', defaultMetrics: false }),
      pageLimit: 500,
      policy: null,
      audit: { record: () => {} },
      clockSkewMs: 300_000,
    };
  });
  afterAll(async () => {
    await upstream?.stop();
    await db?.drop();
  });

  it('a tab or newline in a namespace, padded titles and tags, typed optional fields: applied, watermark past them', async () => {
    const at = (s: number) => `2026-03-01T00:00:0${s}.000000+00:00`;
    upstream.serve = [
      wireMemory({ id: 'u-tab', namespace: 'team\tone', updated_at: at(1) }),
      wireMemory({ id: 'u-nl', namespace: 'team\none/sub', updated_at: at(2) }),
      wireMemory({ id: 'u-title', title: '  padded\u0085', tags: [' t '], updated_at: at(3) }),
      wireMemory({ id: 'u-typed', memory_kind: 'reflection', reflection_depth: 1, confidence_source: 'decayed', citations: [{ uri: 'uri:https://x.example', accessed_at: '2026-01-01T00:00:00Z' }], updated_at: at(4) }),
    ];
    const r = await pullFromPeer(deps, { id: 'ai-rules', url: upstream.url }, 30_000);
    expect(r.failedRow).toBeUndefined();
    expect(r.applied).toBe(4);
    const rows = await db.database.sql`SELECT id, doc FROM memories ORDER BY id`;
    const byId = new Map(rows.map((x) => [x.id as string, x.doc as Record<string, unknown>]));
    for (const served of upstream.serve) expect(byId.get(served.id as string)).toMatchObject({ namespace: served.namespace, title: served.title, tags: served.tags });
    expect(byId.get('u-typed')).toMatchObject({ memory_kind: 'reflection', citations: upstream.serve[3]!.citations });
    expect((await getWatermark(db.database.db, 'ai-rules'))?.since).toBe(at(4));
  });
});
