import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamPeer } from '../helpers/upstream-peer.js';

// The conformance peer against a real memfed node, both directions: memfed's pushes land in
// the peer's store through upstream's serde/validate/upsert; the peer's 0.7 sender pushes to
// memfed; memfed pulls from the peer's since; a declared (not enrolled) 0.7 poller pulls from memfed.

let n: TestNode;
let up: UpstreamPeer;
let keyDir: string;
const MEMFED = 'memfed-c1';
const UP = 'ai-memory-c1';
// Declared flavour=ai-memory-0.7 (its poller never signs) but never enrolled and never
// listening: memfed's pushes to it fail and wait in the DLQ, which no test here reads.
const POLLER = 'ai-memory-poller';

beforeAll(async () => {
  keyDir = newKeyDir();
  // The peer verifies memfed with `<keyDir>/memfed-c1.pub` (memfed writes its key there) and
  // serves its since to memfed (an attestation entry: every namespace).
  up = await new UpstreamPeer({ id: UP, keyDir, attestation: { [MEMFED]: { allowed_namespaces: ['**'] } } }).start();
  up.enrolIn(keyDir);
  n = await startTestNode({ id: MEMFED, keyDir, peers: [{ id: UP, url: up.url }, { id: POLLER, url: 'http://127.0.0.1:9', flavour: 'ai-memory-0.7' }], env: { FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '5000', CATCHUP_INTERVAL_MS: '500' } });
});
afterAll(async () => {
  await n?.destroy();
  await up?.stop();
});

describe('memfed -> upstream conformance peer', () => {
  it('applies memfed pushes through upstream serde, validate_memory and insert_if_newer, acking the quorum', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'to the conformance peer', content: 'x', namespace: 'conf/a', metadata: { scope: 'shared' } });
    expect(r.status).toBe(201);
    expect(r.json.quorum_acks).toBe(2);
    const stored = up.store.memories.get(r.json.id);
    expect(stored).toMatchObject({ title: 'to the conformance peer', namespace: 'conf/a', content: 'x' });
    const push = up.pushes.find((p) => p.status === 200 && (p.answer as { applied: number }).applied >= 1);
    expect(push?.peer).toBe(MEMFED);
    expect(up.refused.filter((x) => x.id === r.json.id)).toEqual([]);
  });

  it('refuses and counts a row upstream refuses (content with \\r) when memfed lets it through', async () => {
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'carriage return', content: 'a\rb', namespace: 'conf/a' });
    if (r.status === 400) {
      // Validation parity (issue 12 point 2): memfed refuses it itself, so nothing is pushed.
      expect(up.pushes.some((p) => JSON.stringify(p.answer).includes('carriage return'))).toBe(false);
      return;
    }
    // Today memfed commits it; the peer refuses the row: `skipped`, not applied, no quorum.
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ error: 'quorum_not_met' });
    const refusal = await waitFor(async () => up.refused.find((x) => x.id === r.json.id), { what: 'the peer refused the row' });
    expect(refusal).toMatchObject({ lane: 'memories', reason: 'content contains invalid characters', via: 'push' });
    expect(up.store.memories.has(r.json.id)).toBe(false);
    expect(up.pushes.some((p) => p.status === 200 && (p.answer as { skipped: number }).skipped >= 1)).toBe(true);
  });

  it('refuses a renamed row: a known id under a new title violates the id key of the (title, namespace) upsert', async () => {
    const c = await api(n.url, 'POST', '/api/v1/memories', { title: 'before rename', content: 'x', namespace: 'conf/b' });
    expect(c.status).toBe(201);
    const u = await api(n.url, 'PUT', `/api/v1/memories/${c.json.id}`, { title: 'after rename' });
    expect([200, 503]).toContain(u.status);
    const refusal = await waitFor(async () => up.refused.find((x) => x.id === c.json.id), { what: 'the rename refused' });
    expect(refusal.reason).toMatch(/UNIQUE constraint failed: memories.id/);
    expect(up.store.memories.get(c.json.id)).toMatchObject({ title: 'before rename' });
  });
});

describe('upstream conformance peer -> memfed', () => {
  it("applies the 0.7 sender's memories and deletions pushes (sorted keys, 1.0 floats, UUID nonce)", async () => {
    const mem = up.newMemory({ namespace: 'conf/up', title: 'from the 0.7 sender' });
    const [pushed] = await up.write(mem, [n.url]);
    expect(pushed!.status).toBe(200);
    expect(pushed!.ack).toBe(true);
    expect(pushed!.body.toString()).toMatch(/^\{"dry_run":false,"memories":\[\{"access_count":0,.*"confidence":1\.0,/);
    const got = await api(n.url, 'GET', `/api/v1/memories/${mem.id}`);
    expect(got.status).toBe(200);
    expect(got.json.memory).toMatchObject({ title: 'from the 0.7 sender', namespace: 'conf/up' });

    const [del] = await up.remove(mem.id, [n.url]);
    expect(del!.status).toBe(200);
    expect((await api(n.url, 'GET', `/api/v1/memories/${mem.id}`)).status).toBe(404);
  });

  it("memfed's catch-up pulls a row written on the peer from the peer's since", async () => {
    const mem = up.newMemory({ namespace: 'conf/pull', title: 'only on the peer' });
    await up.write(mem);
    await waitFor(async () => (await api(n.url, 'GET', `/api/v1/memories/${mem.id}`)).status === 200, { timeoutMs: 20_000, what: 'memfed pulled the row' });
    expect(up.sinceQueries.some((q) => q.includes('since=') || q.includes('peer='))).toBe(true);
  });

  it('a declared 0.7 poller pulls memfed rows unsigned, applying them through validate_memory; an undeclared one is refused', async () => {
    const stranger = new UpstreamPeer({ id: 'ai-memory-stranger', keyDir: newKeyDir() });
    expect((await stranger.poll({ id: MEMFED, url: n.url })).status).toBe(401);
    const poller = new UpstreamPeer({ id: POLLER, keyDir: newKeyDir() });
    const r = await api(n.url, 'POST', '/api/v1/memories', { title: 'for the poller', content: 'y', namespace: 'conf/poll' });
    expect([201, 503]).toContain(r.status);
    const tick = await poller.poll({ id: MEMFED, url: n.url });
    expect(tick.status).toBe(200);
    expect(tick.url).toBe(`${n.url}/api/v1/sync/since?peer=${POLLER}`);
    expect(poller.store.memories.has(r.json.id)).toBe(true);
    expect(tick.watermark).toBeDefined();
    const again = await poller.poll({ id: MEMFED, url: n.url });
    expect(again.url).toContain(`since=${encodeURIComponent(tick.watermark!).replace(/[!'()*]/g, '')}`);
  });
});
