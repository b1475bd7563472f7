import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import type { AppDeps } from '../../src/api/deps.js';
import { loadConfig } from '../../src/config.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { NonceStore } from '../../src/federation/nonces.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import type { FeedPosition } from '../../src/store/feed.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { FakePeer } from '../helpers/peer.js';
import { newNonce } from '../../src/federation/signing.js';

/*
 * Routes through createApp() and app.request(): no port, no queue. Replication, the
 * audit recorder and the nonce store are stand-ins that record what the routes asked.
 */
describe('routes without a server', () => {
  let t: TestDatabase;
  let app: ReturnType<typeof createApp>;
  const afterCommit: Array<FeedPosition | null> = [];
  const audited: string[] = [];
  const contacts: string[] = [];
  const claimed = new Set<string>();
  let puller: FakePeer;
  /** GET /sync/since as an enrolled peer signs it (FED_REQUIRE_SIG=true serves no one else). */
  const pull = (pathAndQuery: string) => {
    const [p, query = ''] = pathAndQuery.split('?');
    const nonce = newNonce();
    return app.request(pathAndQuery, { headers: { 'x-peer-id': 'routes-puller', 'x-memory-nonce': nonce, 'x-memory-sig': puller.signGet(p!, query, nonce) } });
  };

  beforeAll(async () => {
    t = await createTestDatabase();
    const keyDir = newKeyDir();
    await ensureOwnKey(keyDir, 'routes-node');
    puller = await new FakePeer('routes-puller').init();
    puller.enrolIn(keyDir);
    const config = loadConfig({ NODE_ID: 'routes-node', DATABASE_URL: t.url, FED_KEY_DIR: keyDir, ADMIN_TOKEN: 'adm', LOG_LEVEL: 'silent' });
    const nonceRedis = {
      set: async (key: string) => (claimed.has(key) ? null : (claimed.add(key), 'OK' as const)),
      // The bare-nonce claim script: keyed by set key + nonce here.
      eval: async (_script: string, _n: number, key: string | number, nonce: string | number) => (claimed.has(`${key}|${nonce}`) ? 0 : (claimed.add(`${key}|${nonce}`), 1)),
    };
    const deps: AppDeps = {
      config,
      database: t.database,
      logger: createLogger('silent'),
      metrics: createMetrics({ nodeId: 'routes-node', role: 'api', defaultMetrics: false }),
      replication: { afterCommit: async (p) => (afterCommit.push(p), { met: true, acks: 1 }) },
      probes: [],
      federation: { keys: await KeyRing.load(keyDir, 'routes-node'), nonces: new NonceStore(nonceRedis, 'routes', 300_000), onPeerContact: (p) => void contacts.push(p) },
      audit: { record: (e) => void audited.push(e.kind) },
      policy: null,
      auditKeys: new Map(),
      operations: { requestDlqReplay: async () => {}, requestRepair: async () => {}, queueStatus: async () => [] },
    };
    app = createApp(deps);
  });
  afterAll(async () => {
    await t?.drop();
  });

  const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as Record<string, any> });

  it('commits a memory, then hands its feed position to replication', async () => {
    const r = await json(await app.request('/api/v1/memories', { method: 'POST', body: JSON.stringify({ title: 't', content: 'c' }), headers: { 'content-type': 'application/json' } }));
    expect(r.status).toBe(201);
    expect(afterCommit.at(-1)).toMatchObject({ txid: expect.stringMatching(/^\d+$/), seq: expect.stringMatching(/^\d+$/) });
    const [row] = await t.database.sql`SELECT id FROM memories WHERE id = ${r.body.id}`;
    expect(row).toBeDefined();
  });

  it('answers a bad query parameter with 400 INVALID_QUERY naming the field', async () => {
    for (const [path, field] of [['/api/v1/memories?limit=ten', 'limit'], ['/api/v1/memories?offset=-1', 'offset'], ['/api/v1/memories?since=yesterday', 'since'], ['/api/v1/audit/checkpoints?after=1e3', 'after'], ['/api/v1/sync/since?limit=x', 'limit']] as const) {
      const r = await json(await (path.startsWith('/api/v1/sync/') ? pull(path) : app.request(path)));
      expect(r.status, path).toBe(400);
      expect(r.body, path).toMatchObject({ code: 'INVALID_QUERY', field });
    }
  });

  it('clamps list and since limits rather than refusing them', async () => {
    expect((await app.request('/api/v1/memories?limit=999999')).status).toBe(200);
    const r = await json(await pull('/api/v1/sync/since?limit=0'));
    expect(r.status).toBe(200);
    expect(r.body.limit).toBe(1);
    expect((await json(await pull('/api/v1/sync/since?limit=50000'))).body.limit).toBe(10_000);
  });

  it('refuses a malformed cursor or since with their own codes', async () => {
    expect((await json(await pull('/api/v1/sync/since?cursor=v2.1.1'))).body.code).toBe('INVALID_CURSOR');
    expect((await json(await pull('/api/v1/sync/since?since=not-a-time'))).body.code).toBe('INVALID_SINCE');
  });

  it('serves the cursor form with entries and next_cursor from the change feed', async () => {
    // The committed row shows once every older transaction on the cluster has ended.
    const r = await waitFor(async () => {
      const page = await json(await pull('/api/v1/sync/since?cursor=v1.0.0&limit=10'));
      return page.body.entries?.length > 0 ? page : null;
    }, { what: 'the commit below the feed horizon' });
    expect(r.status).toBe(200);
    expect(r.body.next_cursor).toMatch(/^v1\.\d+\.\d+$/);
    expect(r.body.memories.map((m: { id: string }) => m.id)).toEqual(r.body.entries.map((e: { id: string }) => e.id));
  });

  it('validates admin list filters behind the token', async () => {
    expect((await app.request('/api/v1/admin/dlq')).status).toBe(401);
    const auth = { authorization: 'Bearer adm' };
    expect((await json(await app.request('/api/v1/admin/dlq?status=lost', { headers: auth }))).body).toMatchObject({ code: 'INVALID_QUERY', field: 'status' });
    expect((await json(await app.request('/api/v1/admin/dlq?peer=a/b', { headers: auth }))).body).toMatchObject({ code: 'INVALID_QUERY', field: 'peer' });
    expect((await json(await app.request('/api/v1/admin/dlq?limit=0', { headers: auth }))).status).toBe(200);
  });

  it('admin writes read an optional body as JSON only; no body is still a request for everything', async () => {
    const auth = { authorization: 'Bearer adm' };
    expect((await app.request('/api/v1/admin/dlq/replay', { method: 'POST', headers: auth })).status).toBe(202);
    const plain = await json(await app.request('/api/v1/admin/dlq/replay', { method: 'POST', body: '{}', headers: { ...auth, 'content-type': 'text/plain' } }));
    expect(plain).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    const purge = await json(await app.request('/api/v1/admin/dlq/purge', { method: 'POST', body: '{"all":true}', headers: { ...auth, 'content-type': 'text/plain' } }));
    expect(purge).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    // A body that is there is read, not silently taken for "every peer".
    const broken = await json(await app.request('/api/v1/admin/dlq/replay', { method: 'POST', body: '{"peer":', headers: { ...auth, 'content-type': 'application/json' } }));
    expect(broken).toMatchObject({ status: 400, body: { code: 'INVALID_JSON' } });
    const notObject = await json(await app.request('/api/v1/admin/catchup/refusals/reapply', { method: 'POST', body: 'null', headers: { ...auth, 'content-type': 'application/json' } }));
    expect(notObject).toMatchObject({ status: 400, body: { code: 'INVALID_BODY' } });
  });

  it("refuses a stranger's push from its headers, audits it, and tells nobody it made contact", async () => {
    const r = await json(await app.request('/api/v1/sync/push', { method: 'POST', body: '{"sender_agent_id":"nobody","memories":[]}', headers: { 'x-peer-id': 'nobody', 'content-type': 'application/json' } }));
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: 'peer_not_enrolled', code: 'PEER_NOT_ENROLLED' });
    expect(audited).toContain('federation.refused');
    expect(contacts).not.toContain('nobody');
  });
});
