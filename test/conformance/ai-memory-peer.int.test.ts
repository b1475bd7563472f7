import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { UpstreamPeer } from '../helpers/upstream-peer.js';

// A memfed node with an ai-memory 0.7 peer declared `flavour=ai-memory-0.7`, against the
// upstream conformance peer: its unsigned poller, its archive/restore/link lanes, and the
// rows upstream refuses, which memfed's client API refuses too.

const MEMFED = 'memfed-p1';
const UP = 'ai-memory-p1';
let n: TestNode;
let up: UpstreamPeer;

beforeAll(async () => {
  const keyDir = newKeyDir();
  up = await new UpstreamPeer({ id: UP, keyDir, attestation: { [MEMFED]: { allowed_namespaces: ['**'] } } }).start();
  up.enrolIn(keyDir);
  n = await startTestNode({
    id: MEMFED,
    keyDir,
    peers: [],
    env: { FED_PEERS: `${UP}=${up.url};flavour=ai-memory-0.7`, FED_QUORUM_W: '2', FED_ACK_TIMEOUT_MS: '5000', CATCHUP_INTERVAL_MS: '500' },
  });
});
afterAll(async () => {
  await n?.destroy();
  await up?.stop();
});

describe('an enrolled ai-memory 0.7 poller', () => {
  it('pulls every memfed row with its unsigned since, page after page', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api(n.url, 'POST', '/api/v1/memories', { title: `for the 0.7 poller ${i}`, content: 'x' })).json.id);
    const tick = await up.poll({ id: MEMFED, url: n.url });
    expect(tick.status).toBe(200);
    expect(ids.every((id) => up.store.memories.has(id))).toBe(true);
    const again = await up.poll({ id: MEMFED, url: n.url });
    expect(again.status).toBe(200);
    expect(again.url).toContain('since=');
  });

  it('still refuses an unsigned push from that peer', async () => {
    const unsigned = new UpstreamPeer({ id: UP, keyDir: newKeyDir(), sign: false });
    const r = await unsigned.sender.pushMemory(n.url, unsigned.newMemory());
    expect(r.status).toBe(401);
    expect(r.json).toMatchObject({ error: 'x_memory_sig_missing' });
  });
});

describe("the 0.7 sender's archive, restore and link lanes", () => {
  it('applies archives, restores and links and reports them in upstream counters', async () => {
    const a = up.newMemory({ title: 'lane a' });
    const b = up.newMemory({ title: 'lane b' });
    await up.write(a, [n.url]);
    await up.write(b, [n.url]);
    const [link] = await up.linkLocal({ source_id: a.id, target_id: b.id, relation: 'related_to', created_at: a.created_at }, [n.url]);
    expect(link!.json).toMatchObject({ links_applied: 1, skipped: 0 });
    const [arch] = await up.archiveLocal(a.id, [n.url]);
    expect(arch!.json).toMatchObject({ archived: 1, skipped: 0 });
    // An untimed lane event is stamped with its nonce's issue time (ms), and an archive wins a
    // tie: a restore sent within the same millisecond as the archive would be a no-op.
    await new Promise((r) => setTimeout(r, 2));
    const [rest] = await up.restoreLocal(a.id, [n.url]);
    expect(rest!.json).toMatchObject({ restored: 1, skipped: 0 });
    expect((await api(n.url, 'GET', `/api/v1/memories/${a.id}`)).status).toBe(200);
  });

  it('pushes its own archives, restores and links to the peer in the lanes upstream reads', async () => {
    const c = await api(n.url, 'POST', '/api/v1/memories', { title: 'memfed lane a', content: 'x' });
    const d = await api(n.url, 'POST', '/api/v1/memories', { title: 'memfed lane b', content: 'x' });
    await api(n.url, 'POST', '/api/v1/links', { source_id: c.json.id, target_id: d.json.id, relation: 'related_to' });
    await waitFor(async () => up.store.links.size > 0, { what: 'link replicated to the peer' });
    await api(n.url, 'POST', '/api/v1/archive', { ids: [c.json.id] });
    await waitFor(async () => up.store.archived.has(c.json.id), { what: 'archive replicated' });
    await api(n.url, 'POST', `/api/v1/archive/${c.json.id}/restore`);
    await waitFor(async () => up.store.memories.has(c.json.id), { what: 'restore replicated' });
  });
});

describe('validation parity at the client API', () => {
  it.each([
    ['content with \\r', { title: 't', content: 'a\rb' }],
    ['a C1 control in the content', { title: 't', content: 'a\u0085b' }],
    ['U+0085 inside the title', { title: 'a\u0085b', content: 'x' }],
    ['whitespace-only content', { title: 't', content: ' \n ' }],
    ['an unknown memory_kind', { title: 't', content: 'x', memory_kind: 'thought' }],
    ['an unknown confidence_source', { title: 't', content: 'x', confidence_source: 'guess' }],
    ['mistyped citations', { title: 't', content: 'x', citations: 'x' }],
    ['mistyped source_span', { title: 't', content: 'x', source_span: { start: 'a', end: 2 } }],
    ['mistyped persona_version', { title: 't', content: 'x', persona_version: '2' }],
    ['mistyped reflection_depth', { title: 't', content: 'x', reflection_depth: 1.5 }],
    ['mistyped confidence_signals', { title: 't', content: 'x', confidence_signals: { source_age_days: 1 } }],
  ])('refuses %s with a 400 and never pushes it', async (_name, body) => {
    const before = up.pushes.length;
    const r = await api(n.url, 'POST', '/api/v1/memories', body);
    expect(r.status).toBe(400);
    expect(typeof r.json.code).toBe('string');
    expect(up.pushes.length).toBe(before);
  });
});
