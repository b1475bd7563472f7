import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { newNonce } from '../../src/federation/signing.js';
import { applyReplicated } from '../../src/store/replica.js';
import { validateMemory } from '../../src/memory/model.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

const SAME_TS = '2026-05-05T05:05:05.000000+00:00';

async function count(n: TestNode): Promise<number> {
  const [r] = await n.db.database.sql`SELECT count(*)::int AS n FROM memories WHERE deleted_at IS NULL`;
  return r!.n;
}

/** How many catch-up runs of `node` from `peer` ended with `outcome` (from its metrics). */
async function pulls(node: TestNode, peer: string, outcome: string): Promise<number> {
  const text = (await api(node.url, 'GET', '/metrics')).text;
  const m = new RegExp(`memfed_catchup_pulls_total\\{peer="${peer}",outcome="${outcome}"[^}]*\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('catch-up between memfed nodes', () => {
  let keyDir: string;
  const nodes: TestNode[] = [];
  /** A source node and a node pulling from it (the source has no peers: only pulls deliver). */
  const pair = async (name: string, pullerEnv: Record<string, string> = {}) => {
    await ensureOwnKey(keyDir, `${name}-source`);
    await ensureOwnKey(keyDir, `${name}-puller`);
    const source = await startTestNode({ id: `${name}-source`, keyDir });
    nodes.push(source);
    const start = (db?: TestNode) => startTestNode({ id: `${name}-puller`, keyDir, ...(db ? { db: db.db, prefix: db.prefix } : {}), peers: [{ id: source.id, url: source.url }], env: { CATCHUP_INTERVAL_MS: '1000', ...pullerEnv } });
    return { source, start };
  };

  beforeAll(() => {
    keyDir = newKeyDir();
  });
  afterAll(async () => {
    // In parallel: one by one, a dozen shutdowns (each up to SHUTDOWN_GRACE_MS) outlast the hook timeout under load.
    await Promise.all(nodes.map((n) => n.destroy()));
  });

  it('an empty node next to a peer with 5,000 memories (many sharing one updated_at) pulls them all', async () => {
    const { source, start } = await pair('bulk');
    const rows = Array.from({ length: 5000 }, (_, i) => validateMemory(wireMemory({ id: `seed-${i}`, title: `seed ${i}`, updated_at: i % 5 === 0 ? SAME_TS : `2026-05-05T05:05:${String(6 + (i % 50)).padStart(2, '0')}.000000+00:00` })));
    for (let i = 0; i < rows.length; i += 1000) await applyReplicated(source.db.database.db, { memories: rows.slice(i, i + 1000), tombstones: [], originPeer: null });
    const fresh = await start();
    nodes.push(fresh);
    await waitFor(async () => (await count(fresh)) === 5000, { timeoutMs: 60_000, intervalMs: 250, what: '5000 rows pulled' });
    const [wm] = await fresh.db.database.sql`SELECT cursor, since FROM peer_watermarks WHERE peer_id = ${source.id}`;
    expect(wm!.cursor).toMatch(/^v1\./);
    expect(wm!.since).toBeNull();
    // The run counts itself once its last (empty) page is in, just after the last row lands.
    await waitFor(async () => (await pulls(fresh, source.id, 'ok')) >= 1, { what: 'pull counted' });
    const m = await api(fresh.url, 'GET', '/metrics');
    expect(m.text).toMatch(/memfed_catchup_last_success_timestamp_seconds\{peer="bulk-source",node="bulk-puller",role="all",process="[^"]+"\} \d{10}/);
  });

  it('a node that was down while its peer took 1,000 writes pulls them all after restarting', async () => {
    const { source, start } = await pair('down');
    expect((await api(source.url, 'POST', '/api/v1/memories/bulk', Array.from({ length: 200 }, (_, i) => ({ title: `before ${i}`, content: 'x' })))).json.created).toBe(200);
    let puller = await start();
    await waitFor(async () => (await count(puller)) === 200, { timeoutMs: 30_000, what: 'the first 200 rows' });
    await puller.stop();
    const items = Array.from({ length: 1000 }, (_, i) => ({ title: `while down ${i}`, content: 'x' }));
    expect((await api(source.url, 'POST', '/api/v1/memories/bulk', items)).json.created).toBe(1000);
    // Same database and queues, a fresh port (re-binding the one just released can collide).
    puller = await start(puller);
    nodes.push(puller);
    await waitFor(async () => (await count(puller)) === 1200, { timeoutMs: 30_000, what: '1000 missed rows' });
  });

  it('a row that fails to apply for a transient reason halts the watermark there; it is retried, never skipped', async () => {
    const { source } = await pair('halt');
    await api(source.url, 'POST', '/api/v1/memories', { id: 'before-bad', title: 'ok', content: 'x' });
    await api(source.url, 'POST', '/api/v1/memories', { id: 'bad-row', title: 'will conflict', content: 'x' });
    await api(source.url, 'POST', '/api/v1/memories', { id: 'after-bad', title: 'ok', content: 'x' });
    // The puller's database answers a serialization failure (SQLSTATE 40001, retryable) for
    // one row, in place before the puller's first pull.
    const db = await createTestDatabase();
    await db.database.sql.unsafe(`
      CREATE FUNCTION induce_conflict() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.id = 'bad-row' THEN RAISE EXCEPTION 'induced serialization failure on %', NEW.id USING ERRCODE = '40001'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER induce_conflict BEFORE INSERT OR UPDATE ON memories FOR EACH ROW EXECUTE FUNCTION induce_conflict();`);
    const fresh = await startTestNode({ id: 'halt-puller', keyDir, db, peers: [{ id: source.id, url: source.url }], env: { CATCHUP_INTERVAL_MS: '1000' } });
    nodes.push(fresh);
    const watermark = async () => (await fresh.db.database.sql`SELECT cursor, last_error, last_success_at::text AS s FROM peer_watermarks WHERE peer_id = ${source.id}`)[0] as { cursor: string | null; last_error: string | null; s: string | null } | undefined;
    await waitFor(async () => (await watermark())?.last_error?.includes('bad-row'), { timeoutMs: 15_000, what: 'halt recorded' });
    expect((await watermark())!.last_error).toContain('transient');
    const ids = async () => (await fresh.db.database.sql`SELECT id FROM memories WHERE id IN ('before-bad', 'bad-row', 'after-bad')`).map((r) => r.id).sort();
    // The page's transaction rolled back whole: the watermark stays before the row.
    expect(await ids()).toEqual([]);
    const s1 = await watermark();
    // Never past the row: no cursor yet, or the feed start (a first pull may have found the
    // source's feed empty while another transaction on the server held the horizon back).
    expect([null, 'v1.0.0']).toContain(s1!.cursor);
    // Two more runs halt at the same place (counted, not slept for)...
    const halts = await pulls(fresh, source.id, 'apply_failed');
    expect(halts).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await pulls(fresh, source.id, 'apply_failed')) >= halts + 2, { timeoutMs: 15_000, what: 'two more halted runs' });
    // ...with no success recorded (the stale-catch-up alert sees it), nothing applied, nothing recorded as refused.
    expect((await watermark())!.s).toBe(s1!.s);
    expect(await ids()).toEqual([]);
    expect(await fresh.db.database.sql`SELECT 1 FROM catchup_refusals`).toHaveLength(0);
    await fresh.db.database.sql`DROP TRIGGER induce_conflict ON memories`;
    await waitFor(async () => (await ids()).length === 3, { timeoutMs: 15_000, what: 'resumes once the conflict is gone' });
    expect((await watermark())!.last_error).toBeNull();
  });

  it('a row the puller refuses for good is recorded and passed: every row after it arrives', async () => {
    const { source, start } = await pair('pass', { ADMIN_TOKEN: 'pass-admin-token' });
    await api(source.url, 'POST', '/api/v1/memories', { id: 'before-bad', title: 'ok', content: 'x' });
    await api(source.url, 'POST', '/api/v1/memories', { id: 'bad-row', title: 'will break', content: 'x' });
    // Corrupt the stored doc on the source so the puller cannot validate it (before the
    // puller exists: a pull in between would take the row while it was still valid).
    await source.db.database.sql`UPDATE memories SET doc = jsonb_set(doc, '{priority}', '99') WHERE id = 'bad-row'`;
    await api(source.url, 'POST', '/api/v1/memories', { id: 'after-bad', title: 'ok', content: 'x' });
    const fresh = await start();
    nodes.push(fresh);
    const ids = async () => (await fresh.db.database.sql`SELECT id FROM memories WHERE id IN ('before-bad', 'bad-row', 'after-bad')`).map((r) => r.id).sort();
    const refusals = () => fresh.db.database.sql`SELECT memory_id, code, status, row FROM catchup_refusals WHERE peer_id = ${source.id}`;
    // The rows around the bad one may also arrive by the repair run at start; the pull that
    // passes the bad row records it in the same commit as its page.
    await waitFor(async () => (await ids()).length === 2 && (await refusals()).length === 1, { timeoutMs: 15_000, what: 'the rows around the bad one, and its refusal' });
    expect(await ids()).toEqual(['after-bad', 'before-bad']);
    const [rec] = await refusals();
    expect(rec).toMatchObject({ memory_id: 'bad-row', code: 'VALIDATION', status: 'pending' });
    expect(JSON.parse(rec!.row as string).priority).toBe(99);
    const [wm] = await fresh.db.database.sql`SELECT last_error FROM peer_watermarks WHERE peer_id = ${source.id}`;
    expect(wm!.last_error).toBeNull();
    const metrics = (await api(fresh.url, 'GET', '/metrics')).text;
    expect(metrics).toMatch(/memfed_catchup_refusals_total\{peer="pass-source",reason="VALIDATION"[^}]*\} 1/);
    expect(metrics).toMatch(/memfed_catchup_refusals_pending\{peer="pass-source"[^}]*\} 1/);
    // audited: the event reaches the chain through the audit queue
    await waitFor(async () => (await fresh.db.database.sql`SELECT 1 FROM audit_log WHERE kind = 'catchup.refused'`).length === 1, { what: 'catchup.refused in the audit chain' });
    // an operator sees it over the admin API too
    const listed = await api(fresh.url, 'GET', '/api/v1/admin/catchup/refusals?status=pending', undefined, { authorization: 'Bearer pass-admin-token' });
    expect(listed.status).toBe(200);
    expect(listed.json.rows.map((r: { memoryId: string }) => r.memoryId)).toEqual(['bad-row']);
    // re-apply under the same rules: still refused, still pending
    const again = await api(fresh.url, 'POST', '/api/v1/admin/catchup/refusals/reapply', { peer: source.id }, { authorization: 'Bearer pass-admin-token' });
    expect(again.json).toEqual({ taken: 1, applied: 0, superseded: 0, refused: 1 });
  });
});

describe('catch-up from an ai-memory-style peer (since form)', () => {
  let upstream: UpstreamReceiver;
  let n: TestNode;
  afterAll(async () => {
    await n?.destroy();
    await upstream?.stop();
  });

  it('pages with since and gets every row, including rows sharing the boundary timestamp', async () => {
    const keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('ai-up', keyDir).start();
    // 4,500 rows in groups of 7 sharing one timestamp: more than two pages (CATCHUP_PAGE_LIMIT), and page boundaries fall inside groups.
    upstream.serve = Array.from({ length: 4500 }, (_, i) => wireMemory({ id: `up-${String(i).padStart(5, '0')}`, updated_at: `2026-06-01T00:${String(Math.floor(i / 7 / 60)).padStart(2, '0')}:${String(Math.floor(i / 7) % 60).padStart(2, '0')}.000000+00:00` }));
    n = await startTestNode({ id: 'puller', keyDir, peers: [{ id: 'ai-up', url: upstream.url }], env: { CATCHUP_INTERVAL_MS: '500' } });
    await waitFor(async () => (await count(n)) === 4500, { timeoutMs: 30_000, what: '4500 rows from since pulls' });
    const [wm] = await n.db.database.sql`SELECT cursor, since FROM peer_watermarks WHERE peer_id = 'ai-up'`;
    expect(wm!.cursor).toBeNull();
    expect(wm!.since).toMatch(/^2026-06-01T/);
    expect(upstream.sinceRequests.some((q) => q.includes('since='))).toBe(true);
    // the pull is signed and addressed
    expect(upstream.sinceRequests.every((q) => q.includes('to=ai-up') && q.includes('peer=puller'))).toBe(true);
  });
});

describe('since form: a refused row that shares its timestamp with the rows before it', () => {
  let upstream: UpstreamReceiver;
  let n: TestNode;
  afterAll(async () => {
    await n?.destroy();
    await upstream?.stop();
  });

  it('is recorded and passed; the rows around it arrive; the watermark is past it', async () => {
    const keyDir = newKeyDir();
    upstream = await new UpstreamReceiver('ai-bad', keyDir).start();
    const ts = '2026-07-01T00:00:00.000000+00:00';
    upstream.serve = [wireMemory({ id: 'a-1', updated_at: ts }), wireMemory({ id: 'a-2', updated_at: ts }), wireMemory({ id: 'a-3', updated_at: ts, priority: 99 }), wireMemory({ id: 'a-4', updated_at: '2026-07-02T00:00:00.000000+00:00' })];
    n = await startTestNode({ id: 'puller-2', keyDir, peers: [{ id: 'ai-bad', url: upstream.url }], env: { CATCHUP_INTERVAL_MS: '300' } });
    await waitFor(async () => (await count(n)) === 3, { what: 'every row but the refused one' });
    const [rec] = await n.db.database.sql`SELECT memory_id, code, status FROM catchup_refusals WHERE peer_id = 'ai-bad'`;
    expect(rec).toMatchObject({ memory_id: 'a-3', code: 'VALIDATION', status: 'pending' });
    await waitFor(async () => (await n.db.database.sql`SELECT since FROM peer_watermarks WHERE peer_id = 'ai-bad'`)[0]?.since === '2026-07-02T00:00:00.000000+00:00', { what: 'watermark past it' });
    expect(await pulls(n, 'ai-bad', 'apply_failed')).toBe(0);
  });
});

describe('GET /api/v1/sync/since (serve)', () => {
  let n: TestNode;
  let peer: FakePeer;
  beforeAll(async () => {
    const keyDir = newKeyDir();
    peer = await new FakePeer('reader').init();
    peer.enrolIn(keyDir);
    n = await startTestNode({ id: 'server', keyDir });
    await api(n.url, 'POST', '/api/v1/memories/bulk', Array.from({ length: 5 }, (_, i) => ({ id: `s-${i}`, title: `s${i}`, content: 'x' })));
    await api(n.url, 'DELETE', '/api/v1/memories/s-4');
  });
  afterAll(async () => {
    await n?.destroy();
  });

  const signedGet = async (query: string, opts: { tamper?: boolean; sign?: boolean } = {}) => {
    const nonce = newNonce();
    const headers: Record<string, string> = { 'x-peer-id': 'reader', 'x-memory-nonce': nonce };
    if (opts.sign !== false) headers['x-memory-sig'] = peer.signGet('/api/v1/sync/since', query, nonce);
    const res = await fetch(`${n.url}/api/v1/sync/since?${opts.tamper ? query.replace('limit=2', 'limit=3') : query}`, { headers });
    return { status: res.status, json: (await res.json()) as any };
  };

  it('serves the upstream since shape to a signed caller', async () => {
    const r = await signedGet('limit=2');
    expect(r.status).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['count', 'earliest_updated_at', 'latest_updated_at', 'limit', 'memories', 'updated_since']);
    expect(r.json.count).toBe(2);
    const next = await signedGet(`since=${encodeURIComponent(r.json.latest_updated_at)}`);
    expect(next.json.memories.map((m: { id: string }) => m.id)).not.toContain(r.json.memories[1].id);
    expect((await signedGet('since=nope')).status).toBe(400);
  });

  it('serves the cursor form with tombstones and per-row cursors to a signed caller', async () => {
    // Walk the feed from the start until every change is visible (other test files'
    // open transactions on the shared cluster can hold the horizon back for a moment).
    const walk = async () => {
      const ids: string[] = [];
      const tombstones: string[] = [];
      let cursor = 'v1.0.0';
      for (;;) {
        const p = await signedGet(`cursor=${cursor}&limit=2&peer=reader&to=server`);
        expect(p.status).toBe(200);
        expect(p.json.entries.length).toBeLessThanOrEqual(2);
        ids.push(...p.json.entries.map((e: { id: string }) => e.id));
        tombstones.push(...p.json.tombstones.map((t: { id: string }) => t.id));
        cursor = p.json.next_cursor;
        if (!p.json.has_more) break;
      }
      return new Set(ids).size === 5 ? { ids, tombstones } : undefined;
    };
    const { ids, tombstones } = await waitFor(walk, { what: 'all five changes served' });
    expect(new Set(ids)).toEqual(new Set(['s-0', 's-1', 's-2', 's-3', 's-4']));
    expect(tombstones).toContain('s-4');
  });

  it('refuses unsigned reads by an enrolled peer, tampered queries, bad cursors and other audiences', async () => {
    expect((await signedGet('cursor=v1.0.0&limit=2&peer=reader&to=server', { sign: false })).json.error).toBe('x_memory_sig_missing');
    expect((await signedGet('cursor=v1.0.0&limit=2&peer=reader&to=server', { tamper: true })).json.error).toBe('x_memory_sig_bad_signature');
    expect((await signedGet('cursor=v1.0.0&limit=2&peer=reader&to=someone-else')).json.error).toBe('recipient_mismatch');
    const bad = await signedGet('cursor=garbage&limit=2&peer=reader&to=server');
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('INVALID_CURSOR');
  });
});
