import { afterAll, describe, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { validateMemory } from '../../src/memory/model.js';
import { applyReplicated } from '../../src/store/replica.js';
import { waitFor } from '../helpers/env.js';
import { newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';

describe('catch-up of large memories', () => {
  let source: TestNode, puller: TestNode;
  afterAll(async () => {
    await puller?.destroy();
    await source?.destroy();
  });

  it('pulls 200 memories of 60 KB, in pages cut by bytes rather than rows', async () => {
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'big-source');
    await ensureOwnKey(keyDir, 'big-puller');
    source = await startTestNode({ id: 'big-source', keyDir });
    const big = 'x'.repeat(60_000);
    const rows = Array.from({ length: 200 }, (_, i) => validateMemory(wireMemory({ id: `big-${i}`, content: `${i}${big}` })));
    await applyReplicated(source.db.database.db, { memories: rows, tombstones: [], originPeer: null });
    puller = await startTestNode({ id: 'big-puller', keyDir, peers: [{ id: 'big-source', url: source.url }], env: { CATCHUP_INTERVAL_MS: '500' } });
    await waitFor(async () => Number((await puller.db.database.sql`SELECT count(*)::int AS n FROM memories`)[0]!.n) === 200, { timeoutMs: 60_000, what: '12 MB pulled in pages' });
  });
});
