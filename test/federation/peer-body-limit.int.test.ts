import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AI_MEMORY_BODY_LIMIT, pushBodyBudget } from '../../src/federation/peers.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * ai-memory 0.7 answers 413 to any body over 2 MiB (upstream src/lib.rs, DefaultBodyLimit);
 * memfed's default push cap is 8 MiB. A peer declared flavour=ai-memory-0.7 gets push and
 * DLQ replay batches sized under 2 MiB from the start, not learnt from 413s.
 */
describe('per-flavour push body limits', () => {
  let n: TestNode;
  let upstream: UpstreamReceiver;

  beforeAll(async () => {
    const keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('ai-peer', keyDir).start();
    upstream.bodyLimit = AI_MEMORY_BODY_LIMIT;
    n = await startTestNode({ id: 'limit-sender', keyDir, env: { FED_PEERS: `ai-peer=${upstream.url};flavour=ai-memory-0.7`, DLQ_REPLAY_INTERVAL_MS: '3600000', ADMIN_TOKEN: 'adm' } });
  });
  afterAll(async () => {
    await n?.destroy();
    await upstream?.stop();
  });

  it('budgets: the configured cap for memfed peers, under 2 MiB for ai-memory 0.7 peers', () => {
    expect(pushBodyBudget({ flavour: 'memfed' }, 8 * 1024 * 1024)).toBe(8 * 1024 * 1024);
    expect(pushBodyBudget({}, 8 * 1024 * 1024)).toBe(8 * 1024 * 1024);
    expect(pushBodyBudget({ flavour: 'ai-memory-0.7' }, 8 * 1024 * 1024)).toBeLessThan(AI_MEMORY_BODY_LIMIT);
    expect(pushBodyBudget({ flavour: 'ai-memory-0.7' }, 64 * 1024)).toBe(64 * 1024);
  });

  it('pushes a 6 MB backlog and replays its dead letters without a body over 2 MiB or a single 413', async () => {
    // 100 memories of ~60 KB: one 8 MiB batch would be ~6 MB.
    const ids = Array.from({ length: 100 }, (_, i) => `big-${String(i).padStart(3, '0')}`);
    // 60 of them refused at first: they go to the DLQ and come back in replay batches.
    const refused = ids.slice(20, 80);
    for (const id of refused) upstream.refuse.add(id);
    const bulk = await api(n.url, 'POST', '/api/v1/memories/bulk', ids.map((id, i) => ({ id, title: `big ${i}`, content: `${i}`.padEnd(60_000, 'x') })));
    expect(bulk.json.created).toBe(100);
    await waitFor(async () => ids.every((id) => upstream.received.has(id) || upstream.refuse.has(id)) && upstream.offered.size === 100, { timeoutMs: 60_000, what: 'every row offered once' });
    await waitFor(async () => (await n.db.database.sql`SELECT count(*)::int AS c FROM federation_push_dlq WHERE status = 'pending'`)[0]!.c === 60, { timeoutMs: 30_000, what: 'the refused rows dead-lettered' });
    const pushSizes = [...upstream.pushBodyBytes];
    upstream.refuse.clear();
    // One replay of all 60 at once (the scheduler's tick is an hour away).
    expect((await api(n.url, 'POST', '/api/v1/admin/dlq/replay', { peer: 'ai-peer' }, { authorization: 'Bearer adm' })).status).toBe(202);
    await waitFor(async () => ids.every((id) => upstream.received.has(id)), { timeoutMs: 60_000, what: 'the dead letters replayed' });
    const replaySizes = upstream.pushBodyBytes.slice(pushSizes.length);
    expect(replaySizes.length).toBeGreaterThan(0);
    // 60 rows of ~60 KB replayed in batches under the limit (not one 3.6 MB body).
    expect(Math.max(...replaySizes)).toBeGreaterThan(AI_MEMORY_BODY_LIMIT / 2);
    for (const s of [...pushSizes, ...replaySizes]) expect(s, `push bodies: ${upstream.pushBodyBytes.join(', ')}`).toBeLessThanOrEqual(AI_MEMORY_BODY_LIMIT);
    expect(upstream.tooLarge).toBe(0);
  });
});
