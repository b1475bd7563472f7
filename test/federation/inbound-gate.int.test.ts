import { randomBytes } from 'node:crypto';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchReadSlots } from '../../src/api/body-slots.js';
import { newNonce } from '../../src/federation/signing.js';
import { waitFor } from '../helpers/env.js';
import { newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
import { FakePeer, wireMemory } from '../helpers/peer.js';

const OLD_POLLER = 'host:old';
let n: TestNode;
let open: TestNode;
let reader: FakePeer;

beforeAll(async () => {
  const keyDir = newKeyDir();
  reader = await new FakePeer('reader').init();
  reader.enrolIn(keyDir);
  n = await startTestNode({
    id: 'gate',
    role: 'api',
    keyDir,
    env: { FED_PEERS: `${OLD_POLLER}=http://127.0.0.1:9;flavour=ai-memory-0.7`, MAX_BATCH_BODY_BYTES: String(1024 * 1024), MAX_CONCURRENT_BATCH_READS: '2' },
  });
  open = await startTestNode({ id: 'gate-open', role: 'api', keyDir: newKeyDir(), env: { FED_REQUIRE_SIG: 'false' } });
  const created = await fetch(`${n.url}/api/v1/memories`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'gate-1', title: 't', content: 'c' }) });
  expect(created.status).toBe(201);
});
afterAll(async () => {
  await Promise.all([n?.destroy(), open?.destroy()]);
});

interface Held {
  req: ClientRequest;
  response: Promise<{ status: number; json: any; headers: Record<string, string | string[] | undefined> }>;
  /** How the exchange ended so far (for failure messages): 'open', an HTTP status, or the error. */
  outcome(): string;
}

/** A chunked request whose body is sent in part and kept open: its end is up to the test. */
function holdOpen(node: TestNode, path: string, headers: Record<string, string>, firstChunk: Buffer): Held {
  const req = httpRequest({ host: '127.0.0.1', port: node.port, method: 'POST', path, headers: { ...headers, 'transfer-encoding': 'chunked' } });
  const response = new Promise<{ status: number; json: any; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: any = text;
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
      });
    });
    req.on('error', reject);
  });
  let outcome = 'open';
  response.then(
    (r) => void (outcome = `HTTP ${r.status} ${JSON.stringify(r.json)}`),
    // A request the test destroys rejects its response: that is expected, not an error.
    (err: Error) => void (outcome = `error ${err.message}`),
  );
  req.flushHeaders();
  req.write(firstChunk);
  return { req, response, outcome: () => outcome };
}

const wellFormedSig = () => `ed25519=${randomBytes(64).toString('base64')}`;

describe("the node's own id is never an enrolled peer", () => {
  it('refuses a push claiming x-peer-id = NODE_ID on its headers, while the body is still arriving', async () => {
    const held = holdOpen(n, '/api/v1/sync/push', { 'content-type': 'application/json', 'x-peer-id': 'gate', 'x-memory-nonce': newNonce(), 'x-memory-sig': wellFormedSig() }, Buffer.from('{"memories":['));
    try {
      // The body never ends: an answer at all proves it was not read.
      const r = await held.response;
      expect(r.status).toBe(401);
      expect(r.json).toEqual({ error: 'x_memory_sig_no_enrolled_key', code: 'X_MEMORY_SIG_NO_ENROLLED_KEY' });
    } finally {
      held.req.destroy();
    }
  });

  it('refuses an unsigned push as NODE_ID even with FED_REQUIRE_SIG=false', async () => {
    const held = holdOpen(open, '/api/v1/sync/push', { 'content-type': 'application/json', 'x-peer-id': 'gate-open' }, Buffer.from('{"memories":['));
    try {
      const r = await held.response;
      expect(r.status).toBe(401);
      expect(r.json.error).toBe('peer_not_enrolled');
    } finally {
      held.req.destroy();
    }
  });

  it('refuses an unsigned since pull as NODE_ID (its own .pub is not a peer key)', async () => {
    const r = await fetch(`${n.url}/api/v1/sync/since`, { headers: { 'x-peer-id': 'gate' } });
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: string }).error).toBe('peer_not_enrolled');
  });
});

describe('concurrent batch-sized body reads are capped per process (MAX_CONCURRENT_BATCH_READS)', () => {
  it('refuses the read past the cap with 503 BATCH_READS_BUSY + Retry-After, and frees the slots when reads end', async () => {
    const pushes = [0, 1].map(() => reader.push({ sender_agent_id: 'reader', recipient: 'gate', memories: [wireMemory()] }));
    const held = pushes.map((p) => holdOpen(n, '/api/v1/sync/push', p.headers, p.body.subarray(0, 10)));
    let third: Held | null = null;
    try {
      // Both held reads hold a slot once their headers passed (the node runs in this process:
      // its slot count is read directly, so no answer has to be timed).
      const slots = batchReadSlots(n.node.config);
      await waitFor(async () => slots.inUse === 2 || null, { timeoutMs: 30_000, what: 'both held reads holding their slots' }).catch((err: Error) => {
        throw new Error(`${err.message}: ${slots.inUse} in use; the held reads: ${held.map((h) => h.outcome()).join(' | ')}`);
      });
      const extra = reader.push({ sender_agent_id: 'reader', recipient: 'gate', memories: [wireMemory()] });
      third = holdOpen(n, '/api/v1/sync/push', extra.headers, extra.body.subarray(0, 10));
      const refused = await third.response;
      expect(refused.status).toBe(503);
      expect(refused.json).toMatchObject({ code: 'BATCH_READS_BUSY', limit: 2 });
      expect(refused.headers['retry-after']).toBe('1');
      // One held read completes normally, the other is aborted by its client: both slots come back.
      held[0]!.req.end(pushes[0]!.body.subarray(10));
      expect((await held[0]!.response).status).toBe(200);
      held[1]!.req.destroy();
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        const a = reader.push({ sender_agent_id: 'reader', recipient: 'gate', memories: [wireMemory()] });
        const b = reader.push({ sender_agent_id: 'reader', recipient: 'gate', memories: [wireMemory()] });
        const [ra, rb] = await Promise.all([a, b].map((p) => fetch(`${n.url}/api/v1/sync/push`, { method: 'POST', headers: p.headers, body: p.body })));
        ok = ra!.status === 200 && rb!.status === 200;
        if (!ok) await new Promise((res) => setTimeout(res, 100));
      }
      expect(ok).toBe(true);
    } finally {
      for (const h of held) h.req.destroy();
      (third as Held | null)?.req.destroy();
    }
  });
});

describe('GET /api/v1/sync/since with FED_REQUIRE_SIG=true', () => {
  const pull = async (query: string, headers: Record<string, string> = {}) => {
    const r = await fetch(`${n.url}/api/v1/sync/since${query}`, { headers });
    return { status: r.status, json: (await r.json()) as any };
  };

  it('refuses an unsigned caller with no identity: 401 peer_not_enrolled', async () => {
    expect(await pull('?cursor=v1.0.0')).toEqual({ status: 401, json: { error: 'peer_not_enrolled', code: 'PEER_NOT_ENROLLED' } });
    expect((await pull('')).status).toBe(401);
  });

  it('refuses an unsigned caller with an unknown id, by header or by `peer`: 401 peer_not_enrolled', async () => {
    expect((await pull('?cursor=v1.0.0', { 'x-peer-id': 'stranger' })).json.error).toBe('peer_not_enrolled');
    expect((await pull('?peer=stranger')).json.error).toBe('peer_not_enrolled');
  });

  it('refuses an enrolled caller that does not sign: 401 x_memory_sig_missing', async () => {
    expect((await pull('?cursor=v1.0.0', { 'x-peer-id': 'reader' })).json.error).toBe('x_memory_sig_missing');
  });

  it('serves a signed enrolled caller, and an unsigned peer declared ai-memory-0.7', async () => {
    // The feed serves a row once no older transaction in the cluster is still open (feed
    // positions are commit-ordered), so under parallel tests the row can take a moment.
    const signed = await waitFor(async () => {
      const nonce = newNonce();
      const r = await pull('?cursor=v1.0.0', { 'x-peer-id': 'reader', 'x-memory-nonce': nonce, 'x-memory-sig': reader.signGet('/api/v1/sync/since', 'cursor=v1.0.0', nonce) });
      expect(r.status).toBe(200);
      return r.json.memories.some((m: { id: string }) => m.id === 'gate-1') ? r : undefined;
    }, { timeoutMs: 20_000, what: 'the signed pull serves gate-1' });
    expect(signed.status).toBe(200);
    const old = await pull(`?peer=${OLD_POLLER}`, { 'x-peer-id': OLD_POLLER });
    expect(old.status).toBe(200);
    expect(old.json.memories.map((m: { id: string }) => m.id)).toContain('gate-1');
  });
});

describe('GET /api/v1/sync/since with FED_REQUIRE_SIG=false', () => {
  it('serves unsigned callers that are not enrolled, with or without an id', async () => {
    expect((await fetch(`${open.url}/api/v1/sync/since`)).status).toBe(200);
    expect((await fetch(`${open.url}/api/v1/sync/since?peer=stranger`)).status).toBe(200);
  });
});
