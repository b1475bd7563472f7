import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, freePort, waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { spawnMemfed, type NodeProcess } from '../helpers/process.js';
import { dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { createTestPki, tlsEnv } from '../helpers/tls-certs.js';

/** Two real `memfed all` processes, HTTPS only, federation behind client certificates. */
describe('two memfed processes over mutual TLS', () => {
  const pki = createTestPki();
  const trusting = new Agent({ connect: { ca: pki.read(pki.caFile) } });
  const nodes: Array<{ id: string; url: string; db: TestDatabase; prefix: string; proc: NodeProcess }> = [];

  const get = async (url: string) => {
    const res = await fetch(url, { dispatcher: trusting });
    return { status: res.status, json: (await res.json().catch(() => undefined)) as Record<string, any> | undefined };
  };

  beforeAll(async () => {
    const keyDir = newKeyDir();
    const specs = [{ id: 'mtls-a', port: await freePort() }, { id: 'mtls-b', port: await freePort() }];
    for (const s of specs) await ensureOwnKey(keyDir, s.id);
    for (const s of specs) {
      const db = await createTestDatabase();
      const prefix = uniquePrefix();
      const env = {
        NODE_ID: s.id,
        HTTP_PORT: String(s.port),
        WORKER_HTTP_PORT: '0',
        DATABASE_URL: db.url,
        REDIS_URL,
        QUEUE_PREFIX: prefix,
        FED_KEY_DIR: keyDir,
        FED_PEERS: specs.filter((p) => p.id !== s.id).map((p) => `${p.id}=https://localhost:${p.port}`).join(','),
        RECONCILE_INTERVAL_MS: '500',
        LOG_LEVEL: 'warn',
        SHUTDOWN_GRACE_MS: '2000',
        ...tlsEnv(pki, pki.issue(s.id), { FED_REQUIRE_CLIENT_CERT: 'true' }),
      };
      nodes.push({ id: s.id, url: `https://localhost:${s.port}`, db, prefix, proc: spawnMemfed(['all'], env) });
    }
    for (const n of nodes) {
      await waitFor(async () => {
        if (n.proc.proc.exitCode !== null) throw new Error(`${n.id} exited:\n${n.proc.output().slice(-3000)}`);
        return (await get(`${n.url}/api/v1/ready`).catch(() => null))?.status === 200;
      }, { timeoutMs: 60_000, what: `${n.id} ready over HTTPS` });
    }
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.proc.stop()));
    for (const n of nodes) {
      await n.db.drop();
      await dropPrefix(n.prefix);
    }
    await trusting.close();
  });

  it('replicates a write from one process to the other, and refuses federation to a client without a certificate', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const res = await fetch(`${a.url}/api/v1/memories`, { method: 'POST', dispatcher: trusting, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'across processes', content: 'over mutual TLS' }) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const onB = await waitFor(async () => {
      const r = await get(`${b.url}/api/v1/memories/${id}`);
      return r.status === 200 ? r.json : undefined;
    }, { timeoutMs: 30_000, what: 'the memory on mtls-b' });
    expect(onB).toMatchObject({ memory: { id, title: 'across processes' } });
    const refused = await get(`${b.url}/api/v1/sync/since?peer=mtls-a&to=mtls-b`);
    expect(refused).toEqual({ status: 401, json: expect.objectContaining({ code: 'CLIENT_CERT_REQUIRED' }) });
  });
});
