import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamPeer } from '../helpers/upstream-peer.js';

// The conformance peer's HTTP behaviour, peer to peer (no memfed): the signature/nonce
// matrix, the body limit, serde failing the whole body, counters, dry run, since scoping.

const dir = () => mkdtempSync(path.join(tmpdir(), 'memfed-up-'));
let rx: UpstreamPeer;
let tx: UpstreamPeer;
let stranger: UpstreamPeer;
const post = (url: string, headers: Record<string, string>, body: string | Buffer) => fetch(`${url}/api/v1/sync/push`, { method: 'POST', headers, body }).then(async (r) => ({ status: r.status, text: await r.text() }));

beforeAll(async () => {
  const keys = dir();
  rx = await new UpstreamPeer({ id: 'rx', keyDir: keys, attestation: { tx: { allowed_namespaces: ['shared/**'] }, stranger: {}, puller: { allowed_namespaces: ['shared/**'] } } }).start();
  tx = await new UpstreamPeer({ id: 'tx', keyDir: dir() }).start();
  stranger = await new UpstreamPeer({ id: 'stranger', keyDir: dir() }).start();
  tx.enrolIn(keys);
});
afterAll(async () => {
  await Promise.all([rx?.stop(), tx?.stop(), stranger?.stop()]);
});

describe('push receive (federation_receive.rs, federation_signing_check.rs)', () => {
  it('applies a signed push and answers the sqlite counters', async () => {
    const m = tx.newMemory({ namespace: 'shared/a' });
    const [r] = await tx.write(m, [rx.url]);
    expect(r!.status).toBe(200);
    expect(r!.json).toMatchObject({ applied: 1, deleted: 0, archived: 0, restored: 0, links_applied: 0, noop: 0, skipped: 0, dry_run: false, receiver_agent_id: expect.stringMatching(/^anonymous:req-/) });
    expect(rx.store.memories.has(m.id)).toBe(true);
  });

  it('walks the matrix: replayed nonce, missing sig from an enrolled peer, sig from an unenrolled one, bad sig', async () => {
    const req = tx.sender.build({ sender_agent_id: 'tx', memories: [], dry_run: false });
    expect((await tx.sender.send(rx.url, req)).status).toBe(200);
    expect((await tx.sender.send(rx.url, req)).json).toMatchObject({ error: 'x_memory_nonce_replay' });
    const { 'x-memory-sig': _s, ...unsigned } = tx.sender.build({ sender_agent_id: 'tx', memories: [] }).headers;
    expect(await post(rx.url, unsigned, '{"sender_agent_id":"tx","memories":[]}')).toMatchObject({ status: 401, text: expect.stringContaining('x_memory_sig_missing') });
    const foreign = stranger.sender.build({ sender_agent_id: 'stranger', memories: [] });
    expect((await stranger.sender.send(rx.url, foreign)).json).toMatchObject({ error: 'x_memory_sig_no_enrolled_key' });
    const tampered = { ...req, body: Buffer.from(req.body.toString().replace('"tx"', '"tx" ')) };
    expect((await tx.sender.send(rx.url, { ...tampered, headers: { ...tampered.headers, 'x-memory-nonce': 'other' } })).json).toMatchObject({ error: 'x_memory_sig_bad_signature' });
    const { 'x-memory-nonce': _n, ...noNonce } = tx.sender.build({ sender_agent_id: 'tx', memories: [] }).headers;
    expect(await post(rx.url, noNonce, '{"sender_agent_id":"tx","memories":[]}')).toMatchObject({ status: 401 });
  });

  it('accepts an unsigned push from an unenrolled, allowlisted peer (upstream default) and refuses one outside the allowlist', async () => {
    const unsigned = new UpstreamPeer({ id: 'stranger', keyDir: dir(), sign: false });
    expect((await unsigned.sender.pushMemory(rx.url, unsigned.newMemory({ namespace: 'shared/s' }))).json).toMatchObject({ applied: 1 });
    const outsider = new UpstreamPeer({ id: 'outsider', keyDir: dir(), sign: false });
    expect((await outsider.sender.pushMemory(rx.url, outsider.newMemory())).json).toMatchObject({ error: 'x_peer_id_not_in_allowlist' });
  });

  it('refuses a body over 2 MiB with 413 and a serde error anywhere with a whole-body 400', async () => {
    const big = tx.newMemory({ content: 'x'.repeat(60_000) });
    const huge = tx.sender.build({ sender_agent_id: 'tx', memories: Array.from({ length: 40 }, (_, i) => ({ ...big, id: `big-${i}`, title: `big ${i}` })) });
    expect((await tx.sender.send(rx.url, huge)).status).toBe(413);
    const good = tx.newMemory();
    const r = await tx.sender.send(rx.url, tx.sender.build({ sender_agent_id: 'tx', memories: [good, { ...good, id: 'other', priority: 'high' }] }));
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: expect.stringMatching(/^malformed sync_push body: invalid type: string "high", expected i32/) });
    expect(rx.store.memories.has(good.id)).toBe(false);
  });

  it('counts a refused row in skipped and a dry-run row in noop', async () => {
    const ok = tx.newMemory();
    const bad = tx.newMemory({ content: 'a\rb' });
    const r = await tx.sender.send(rx.url, tx.sender.build({ sender_agent_id: 'tx', memories: [ok, bad], dry_run: true }));
    expect(r.json).toMatchObject({ applied: 0, noop: 1, skipped: 1, dry_run: true });
    expect(rx.refused.at(-1)).toMatchObject({ id: bad.id, reason: 'content contains invalid characters' });
  });

  it('applies deletions, archives, restores and links with their counters', async () => {
    const a = tx.newMemory({ namespace: 'shared/l', title: 'l-a' });
    const b = tx.newMemory({ namespace: 'shared/l', title: 'l-b' });
    await tx.write(a, [rx.url]);
    await tx.write(b, [rx.url]);
    expect((await tx.linkLocal({ source_id: a.id, target_id: b.id, relation: 'related_to', created_at: a.created_at }, [rx.url]))[0]!.json).toMatchObject({ links_applied: 1 });
    expect((await tx.archiveLocal(a.id, [rx.url]))[0]!.json).toMatchObject({ archived: 1 });
    expect((await tx.sender.pushArchive(rx.url, a.id)).json).toMatchObject({ archived: 0, noop: 1 });
    expect((await tx.restoreLocal(a.id, [rx.url]))[0]!.json).toMatchObject({ restored: 1 });
    expect((await tx.remove(b.id, [rx.url]))[0]!.json).toMatchObject({ deleted: 1 });
    expect((await tx.sender.pushDeletion(rx.url, b.id)).json).toMatchObject({ deleted: 0, noop: 1 });
  });
});

describe('since (federation_sync_since.rs) and the poller (catchup.rs)', () => {
  it('scopes since to the caller: allowlisted namespaces, default-deny otherwise', async () => {
    const inside = tx.newMemory({ namespace: 'shared/p', title: 'p-in' });
    const outside = tx.newMemory({ namespace: 'elsewhere', title: 'p-out' });
    rx.store.insertIfNewer(inside);
    rx.store.insertIfNewer(outside);
    // An enrolled 0.7 poller never signs: its own kind answers 401 (upstream 0.7 as it is).
    expect(await tx.poll({ id: 'rx', url: rx.url })).toMatchObject({ status: 401, skipped: 'http' });
    const puller = new UpstreamPeer({ id: 'puller', keyDir: dir() });
    const tick = await puller.poll({ id: 'rx', url: rx.url });
    expect(tick.status).toBe(200);
    expect(puller.store.memories.has(inside.id)).toBe(true);
    expect(puller.store.memories.has(outside.id)).toBe(false);
    const anon = new UpstreamPeer({ id: 'nobody', keyDir: dir() });
    const res = await (await fetch(`${rx.url}/api/v1/sync/since`)).json();
    expect(res).toMatchObject({ count: 0, scope_status: 'no_allowlist_default_deny' });
    expect((await anon.poll({ id: 'rx', url: rx.url })).rows).toBe(0);
  });

  it('answers 400 to an unparseable since and to a non-numeric limit', async () => {
    expect((await fetch(`${rx.url}/api/v1/sync/since?since=yesterday`)).status).toBe(400);
    // The signature gate comes first: an enrolled caller's unsigned request is refused before `since` is read.
    expect((await fetch(`${rx.url}/api/v1/sync/since?since=yesterday`, { headers: { 'x-peer-id': 'tx' } })).status).toBe(401);
    expect((await fetch(`${rx.url}/api/v1/sync/since?limit=ten`)).status).toBe(400);
  });
});
