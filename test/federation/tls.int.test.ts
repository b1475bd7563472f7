import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeerClient, PeerRequestError } from '../../src/federation/client.js';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { clientTlsOptions, loadTls } from '../../src/tls.js';
import { freePort, waitFor } from '../helpers/env.js';
import { newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { createTestPki, tlsEnv, type CertFiles, type TestPki } from '../helpers/tls-certs.js';

/** A JSON request over HTTPS trusting `ca`, presenting `client` when given. */
async function httpsApi(pki: TestPki, base: string, method: string, p: string, opts: { body?: unknown; client?: CertFiles; headers?: Record<string, string> } = {}) {
  const dispatcher = new Agent({ connect: { ca: pki.read(pki.caFile), ...(opts.client ? { cert: pki.read(opts.client.cert), key: pki.read(opts.client.key) } : {}) } });
  try {
    const res = await fetch(`${base}${p}`, { method, dispatcher, headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers }, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  } finally {
    await dispatcher.close();
  }
}

describe('TLS and mutual TLS between peers', () => {
  const pki = createTestPki();
  // Another CA entirely: its certificates look right but nobody here trusts them.
  const rogue = createTestPki('rogue-ca');
  let a: TestNode;
  let b: TestNode;

  beforeAll(async () => {
    const keyDir = newKeyDir();
    const specs = [{ id: 'tls-a', port: await freePort() }, { id: 'tls-b', port: await freePort() }];
    for (const s of specs) await ensureOwnKey(keyDir, s.id);
    const started = await Promise.all(
      specs.map((s) =>
        startTestNode({
          id: s.id,
          port: s.port,
          keyDir,
          peers: specs.filter((p) => p.id !== s.id).map((p) => ({ id: p.id, url: `https://127.0.0.1:${p.port}` })),
          env: tlsEnv(pki, pki.issue(s.id), { FED_REQUIRE_CLIENT_CERT: 'true' }),
        }),
      ),
    );
    [a, b] = [started[0]!, started[1]!];
  });
  afterAll(async () => {
    await Promise.all([a?.destroy(), b?.destroy()]);
  });

  it('serves the API over HTTPS; clients without a certificate can use it, plain HTTP gets no answer', async () => {
    expect(a.url).toBe(`https://127.0.0.1:${a.port}`);
    expect((await httpsApi(pki, a.url, 'GET', '/api/v1/health')).status).toBe(200);
    const created = await httpsApi(pki, a.url, 'POST', '/api/v1/memories', { body: { title: 'no client cert', content: 'the API needs none' } });
    expect(created.status).toBe(201);
    await expect(globalThis.fetch(`http://127.0.0.1:${a.port}/api/v1/health`)).rejects.toThrow();
  });

  it('replicates a write between two nodes over HTTPS with client certificates', async () => {
    const created = await httpsApi(pki, a.url, 'POST', '/api/v1/memories', { body: { title: 'over mtls', content: 'pushed from a to b' } });
    expect(created.status).toBe(201);
    const id = created.json!.id as string;
    const onB = await waitFor(async () => {
      const r = await httpsApi(pki, b.url, 'GET', `/api/v1/memories/${id}`);
      return r.status === 200 ? r.json : undefined;
    }, { timeoutMs: 30_000, what: 'the memory on b' });
    expect(onB).toMatchObject({ memory: { id, title: 'over mtls' } });
  });

  it('refuses federation requests without a client certificate (401 CLIENT_CERT_REQUIRED)', async () => {
    for (const [method, p] of [['POST', '/api/v1/sync/push'], ['GET', '/api/v1/sync/since?peer=tls-a&to=tls-b']] as const) {
      const r = await httpsApi(pki, b.url, method, p, method === 'POST' ? { body: { memories: [] }, headers: { 'x-peer-id': 'tls-a' } } : { headers: { 'x-peer-id': 'tls-a' } });
      expect(r.status, p).toBe(401);
      expect(r.json?.code, p).toBe('CLIENT_CERT_REQUIRED');
    }
  });

  it('keeps refusing a client without a certificate on reused connections and resumed TLS sessions', async () => {
    // One agent: keep-alive reuse, then new connections that resume the TLS session (TLS 1.3
    // reports a resumed session without a certificate as "authorized").
    const dispatcher = new Agent({ connect: { ca: pki.read(pki.caFile) } });
    try {
      const codes: unknown[] = [];
      for (const close of [false, false, true, true, true]) {
        const res = await fetch(`${b.url}/api/v1/sync/since?peer=tls-a&to=tls-b`, { dispatcher, headers: { 'x-peer-id': 'tls-a', ...(close ? { connection: 'close' } : {}) } });
        codes.push(((await res.json()) as { code?: string }).code);
      }
      expect(codes).toEqual(Array(5).fill('CLIENT_CERT_REQUIRED'));
    } finally {
      await dispatcher.close();
    }
  });

  it('refuses federation requests with a certificate another CA signed (403 CLIENT_CERT_INVALID)', async () => {
    const intruder = rogue.issue('intruder');
    const r = await httpsApi(pki, b.url, 'POST', '/api/v1/sync/push', { body: { memories: [] }, client: intruder, headers: { 'x-peer-id': 'tls-a' } });
    expect(r.status).toBe(403);
    expect(r.json?.code).toBe('CLIENT_CERT_INVALID');
    // Resumed sessions keep the certificate's verdict.
    const dispatcher = new Agent({ connect: { ca: pki.read(pki.caFile), cert: pki.read(intruder.cert), key: pki.read(intruder.key) } });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${b.url}/api/v1/sync/since?peer=tls-a&to=tls-b`, { dispatcher, headers: { 'x-peer-id': 'tls-a', connection: 'close' } });
        expect(((await res.json()) as { code?: string }).code).toBe('CLIENT_CERT_INVALID');
      }
    } finally {
      await dispatcher.close();
    }
  });
});

describe('the outbound peer client verifies the peer against TLS_CA_FILE', () => {
  const pki = createTestPki();
  const rogue = createTestPki('rogue-ca');
  const servers: Server[] = [];
  const seen: Array<{ authorized: boolean }> = [];

  /** An HTTPS peer answering every request with `{}`, recording whether our client cert verified. */
  async function peer(files: CertFiles, caFile: string): Promise<string> {
    const server = createServer({ cert: pki.read(files.cert), key: pki.read(files.key), ca: pki.read(caFile), requestCert: true, rejectUnauthorized: false }, (req, res) => {
      seen.push({ authorized: (req.socket as TLSSocket).authorized });
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    return `https://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  }
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('presents its certificate to a peer the CA vouches for, and refuses one it does not', async () => {
    const self = pki.issue('self');
    const material = await loadTls({ certFile: self.cert, keyFile: self.key, caFile: pki.caFile, requireClientCert: false });
    const client = new PeerClient({ selfId: 'self', signingKey: null, apiKey: '', timeoutMs: 10_000, tls: clientTlsOptions(material) });
    try {
      const good = await peer(pki.issue('good-peer'), pki.caFile);
      await expect(client.push({ id: 'good-peer', url: good }, { memories: [] })).resolves.toEqual({});
      expect(seen).toEqual([{ authorized: true }]);

      const bad = await peer(rogue.issue('impostor'), pki.caFile);
      const err = await client.push({ id: 'impostor', url: bad }, { memories: [] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PeerRequestError);
      expect((err as PeerRequestError).failureClass).toBe('transient');
      expect((err as PeerRequestError).message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT|SELF_SIGNED/);
      // The impostor never saw a request.
      expect(seen).toHaveLength(1);
    } finally {
      await client.close();
    }
  });
});
