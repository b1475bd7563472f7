import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import type { AppDeps } from '../../src/api/deps.js';
import { loadConfig } from '../../src/config.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { NonceStore } from '../../src/federation/nonces.js';
import { newNonce } from '../../src/federation/signing.js';
import { createMetrics } from '../../src/metrics.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, send, wireMemory } from '../helpers/peer.js';

/*
 * An ai-memory 0.7 daemon catching up from memfed. Its poller (upstream
 * src/federation catch-up: catchup_once_with_store, sync_since_url, urlencoding_encode):
 *  - GET {base}/api/v1/sync/since?peer=<local id> on the first pull, then
 *    ?since=<pct-encoded latest updated_at seen>&peer=<local id>; no `limit` (the server's
 *    default 500 applies), no cursor;
 *  - headers x-agent-id and x-peer-id (both its own id), x-api-key only when it has one
 *    configured; never x-memory-sig / x-memory-nonce;
 *  - the next `since` is the greatest `updated_at` of the page, compared as strings.
 */

/** upstream urlencoding_encode: unreserved bytes as is, every other byte as %XX (upper case). */
const upstreamEncode = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

/** upstream sync_since_url. */
const sinceUrl = (base: string, localId: string, since: string | null) =>
  since === null ? `${base}/api/v1/sync/since?peer=${localId}` : `${base}/api/v1/sync/since?since=${upstreamEncode(since)}&peer=${localId}`;

/** One poll exactly as the 0.7 poller sends it. */
async function poll(base: string, localId: string, since: string | null, apiKey?: string) {
  const headers: Record<string, string> = { 'x-agent-id': localId, 'x-peer-id': localId };
  if (apiKey !== undefined) headers['x-api-key'] = apiKey;
  const res = await fetch(sinceUrl(base, localId, since), { headers });
  return { status: res.status, json: (await res.json()) as any };
}

/** Polls until a page comes back empty, as successive 0.7 ticks would; the rows by id, last version wins. */
async function pollUntilEmpty(base: string, localId: string, apiKey?: string) {
  const rows = new Map<string, Record<string, unknown>>();
  let since: string | null = null;
  let pages = 0;
  for (;;) {
    const r = await poll(base, localId, since, apiKey);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const memories = r.json.memories as Array<Record<string, unknown>>;
    if (memories.length === 0) return { rows, pages };
    pages++;
    for (const m of memories) {
      rows.set(String(m.id), m);
      if (since === null || String(m.updated_at) > since) since = String(m.updated_at);
    }
    expect(pages).toBeLessThan(50);
  }
}

const POLLER = 'host:a';
const MEMFED_PEER = 'host:b';
const KEY = 'secret-api-key';

describe('an ai-memory 0.7 poller against a memfed node (API_KEY set)', () => {
  let n: TestNode;
  let poller: FakePeer;
  let memfedPeer: FakePeer;

  beforeAll(async () => {
    const keyDir = newKeyDir();
    // Both peers enrolled: the 0.7 daemon's key is needed for its signed pushes.
    poller = await new FakePeer(POLLER).init();
    memfedPeer = await new FakePeer(MEMFED_PEER).init();
    poller.enrolIn(keyDir);
    memfedPeer.enrolIn(keyDir);
    // The documented FED_PEERS form, verbatim (the peers' URLs are never called: api role only).
    n = await startTestNode({ id: 'memfed-served', role: 'api', keyDir, env: { API_KEY: KEY, FED_PEERS: 'host:a=http://127.0.0.1:9081;flavour=ai-memory-0.7,host:b=http://127.0.0.1:9082' } });
  });
  afterAll(async () => {
    await n?.destroy();
  });

  const h = { 'x-api-key': KEY };

  it('pulls every live row, page by page, with exactly the request the 0.7 poller sends', async () => {
    const items = Array.from({ length: 1200 }, (_, i) => ({ title: `row ${i}`, content: `content ${i}`, namespace: 'poll/test' }));
    for (let i = 0; i < items.length; i += 1000) expect((await api(n.url, 'POST', '/api/v1/memories/bulk', items.slice(i, i + 1000), h)).json.created).toBe(Math.min(1000, items.length - i));
    // A row from the 0.7 peer itself (served back to it too: the since form has no origin filter, as upstream).
    const pushed = poller.push({ sender_agent_id: POLLER, memories: [wireMemory({ id: 'from-poller' })] }, { bareNonce: true });
    pushed.headers['x-api-key'] = KEY;
    expect((await send(n.url, pushed)).json).toMatchObject({ applied: 1 });
    // An update and a delete: the update is served in its last version, the deleted row not at all.
    const [first, second] = (await n.db.database.sql`SELECT id FROM memories WHERE namespace = 'poll/test' ORDER BY updated_at LIMIT 2`).map((r) => String(r.id));
    expect((await api(n.url, 'PUT', `/api/v1/memories/${first}`, { content: 'updated' }, h)).status).toBe(200);
    expect((await api(n.url, 'DELETE', `/api/v1/memories/${second}`, undefined, h)).status).toBe(200);

    const { rows, pages } = await pollUntilEmpty(n.url, POLLER, KEY);
    const live = (await n.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NULL`).map((r) => String(r.id));
    expect(live).toHaveLength(1200);
    expect([...rows.keys()].sort()).toEqual([...live].sort());
    expect(pages).toBeGreaterThanOrEqual(3); // 500 rows a page by default
    expect(rows.get(first!)?.content).toBe('updated');
    expect(rows.has(second!)).toBe(false);

    // Counted per peer (the pulls and the empty last one).
    const metrics = await api(n.url, 'GET', '/metrics', undefined, h);
    const counted = Number(/memfed_unsigned_since_pulls_total\{[^}]*peer="host:a"[^}]*\} (\d+)/.exec(metrics.text)?.[1]);
    expect(counted).toBe(pages + 1);
  });

  it('loses no row of a run sharing one updated_at across the page limit (the poller re-asks with since exclusive)', async () => {
    // 700 rows with one timestamp (as a peer may send them), more than a page of 500.
    const at = '2025-06-01T00:00:00.000000+00:00';
    const same = Array.from({ length: 700 }, (_, i) => wireMemory({ id: `same-${String(i).padStart(3, '0')}`, updated_at: at, created_at: at }));
    const req = poller.push({ sender_agent_id: POLLER, memories: same }, { bareNonce: true });
    req.headers['x-api-key'] = KEY;
    expect((await send(n.url, req)).json).toMatchObject({ applied: 700, skipped: 0 });
    const first = await poll(n.url, POLLER, null, KEY);
    expect(first.json.memories).toHaveLength(700);
    expect(first.json.latest_updated_at).toBe(at);
    const { rows } = await pollUntilEmpty(n.url, POLLER, KEY);
    const live = (await n.db.database.sql`SELECT id FROM memories WHERE deleted_at IS NULL`).map((r) => String(r.id));
    expect(live).toHaveLength(1900);
    expect([...rows.keys()].sort()).toEqual([...live].sort());
  });

  it('still requires the API key of an unsigned 0.7 poller', async () => {
    const r = await poll(n.url, POLLER, null);
    expect(r).toMatchObject({ status: 401, json: { code: 'API_KEY_MISSING' } });
    expect((await poll(n.url, POLLER, null, 'wrong')).status).toBe(401);
  });

  it('still refuses an unsigned pull from an enrolled memfed-flavour peer, and an unsigned push from the 0.7 peer', async () => {
    const r = await poll(n.url, MEMFED_PEER, null, KEY);
    expect(r).toMatchObject({ status: 401, json: { error: 'x_memory_sig_missing' } });
    // The cursor form too.
    const c = await api(n.url, 'GET', `/api/v1/sync/since?cursor=v1.0.0&peer=${MEMFED_PEER}`, undefined, h);
    expect(c).toMatchObject({ status: 401, json: { error: 'x_memory_sig_missing' } });
    // Pushes keep the full signature matrix whatever the flavour.
    const raw = Buffer.from(JSON.stringify({ sender_agent_id: POLLER, memories: [wireMemory()] }));
    const unsigned = await send(n.url, { headers: { 'content-type': 'application/json', 'x-peer-id': POLLER, 'x-api-key': KEY }, body: raw });
    expect(unsigned).toMatchObject({ status: 401, json: { error: 'x_memory_sig_missing' } });
  });

  it('verifies a 0.7 peer that does sign, like any peer', async () => {
    const query = `since=${upstreamEncode('2020-01-01T00:00:00+00:00')}&peer=${POLLER}`;
    const nonce = newNonce();
    const ok = await fetch(`${n.url}/api/v1/sync/since?${query}`, { headers: { ...h, 'x-peer-id': POLLER, 'x-memory-nonce': nonce, 'x-memory-sig': poller.signGet('/api/v1/sync/since', query, nonce) } });
    expect(ok.status).toBe(200);
    const bad = await fetch(`${n.url}/api/v1/sync/since?${query}`, { headers: { ...h, 'x-peer-id': POLLER, 'x-memory-nonce': newNonce(), 'x-memory-sig': poller.signGet('/api/v1/sync/since', query, nonce) } });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: string }).error).toBe('x_memory_sig_bad_signature');
  });
});

// FED_REQUIRE_SIG=false, so that an anonymous caller is served at all and can be compared with.
describe('an unsigned 0.7 poller sees nothing an anonymous caller could not (API_KEY unset)', () => {
  let t: TestDatabase;
  let app: ReturnType<typeof createApp>;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'anon-node');
    const poller = await new FakePeer(POLLER).init();
    const memfedPeer = await new FakePeer(MEMFED_PEER).init();
    poller.enrolIn(keyDir);
    memfedPeer.enrolIn(keyDir);
    const config = loadConfig({ NODE_ID: 'anon-node', DATABASE_URL: t.url, FED_KEY_DIR: keyDir, FED_PEERS: `${POLLER}=http://127.0.0.1:9081;flavour=ai-memory-0.7,${MEMFED_PEER}=http://127.0.0.1:9082,host:c=http://127.0.0.1:9083;flavour=ai-memory-0.7`, FED_REQUIRE_SIG: 'false', LOG_LEVEL: 'warn' });
    const sink = new Writable({ write: (chunk, _enc, cb) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), cb()) });
    const nonceRedis = { set: async () => 'OK' as const, eval: async () => 1 };
    const deps: AppDeps = {
      config,
      database: t.database,
      logger: pino({ level: 'warn' }, sink),
      metrics: createMetrics({ nodeId: 'anon-node', role: 'api', defaultMetrics: false }),
      replication: { afterCommit: async () => ({ met: true, acks: 1 }) },
      probes: [],
      federation: { keys: await KeyRing.load(keyDir, 'anon-node'), nonces: new NonceStore(nonceRedis, 'anon', 300_000), onPeerContact: () => {} },
      audit: { record: () => {} },
      policy: null,
      auditKeys: new Map(),
      operations: { requestDlqReplay: async () => {}, requestRepair: async () => {}, queueStatus: async () => [] },
    };
    app = createApp(deps);
    for (let i = 0; i < 5; i++) {
      const r = await app.request('/api/v1/memories', { method: 'POST', body: JSON.stringify({ title: `t${i}`, content: 'c' }), headers: { 'content-type': 'application/json' } });
      expect(r.status).toBe(201);
    }
  });
  afterAll(async () => {
    await t?.drop();
  });

  const get = async (p: string, headers: Record<string, string> = {}) => {
    const res = await app.request(p, { headers });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it('serves the since and cursor forms to the 0.7 peer exactly as to a caller with no id', async () => {
    const anon = await get('/api/v1/sync/since');
    expect(anon.status).toBe(200);
    expect(anon.body.count).toBe(5);
    expect(await get(`/api/v1/sync/since?peer=${POLLER}`, { 'x-agent-id': POLLER, 'x-peer-id': POLLER })).toEqual(anon);
    // The feed serves a row once no older transaction in the cluster is open (commit
    // order): wait until all five are visible, then compare the two callers.
    const anonCursor = await waitFor(async () => {
      const r = await get('/api/v1/sync/since?cursor=v1.0.0');
      return r.body.memories?.length === 5 ? r : undefined;
    }, { timeoutMs: 20_000, what: 'the five rows below the feed horizon' });
    const pollerCursor = await get(`/api/v1/sync/since?cursor=v1.0.0&peer=${POLLER}`);
    expect(pollerCursor.status).toBe(200);
    expect(pollerCursor.body.memories).toEqual(anonCursor.body.memories);
    // ...while an enrolled memfed-flavour peer must still sign.
    expect(await get(`/api/v1/sync/since?peer=${MEMFED_PEER}`)).toMatchObject({ status: 401, body: { error: 'x_memory_sig_missing' } });
  });

  it('warns once per 0.7 peer per process, however many pulls', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await get(`/api/v1/sync/since?peer=${POLLER}`)).status).toBe(200);
      expect((await get('/api/v1/sync/since?peer=host:c')).status).toBe(200);
    }
    const warned = lines.filter((l) => String(l.msg).startsWith('accepting unsigned GET /sync/since from an ai-memory 0.7 peer'));
    expect(warned.map((l) => l.peer).sort()).toEqual([POLLER, 'host:c']);
    expect(warned.every((l) => l.level === 40)).toBe(true);
  });
});
