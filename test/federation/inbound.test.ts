import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ed from '@noble/ed25519';
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { verifyInbound, type InboundPolicy, type InboundRequest } from '../../src/federation/inbound.js';
import { KeyRing } from '../../src/federation/keys.js';
import { NonceStore, type NonceRedis } from '../../src/federation/nonces.js';
import { newNonce, postSigningBytes } from '../../src/federation/signing.js';

/** In-memory stand-in for ioredis `SET key value PX ms NX`. */
class FakeRedis implements NonceRedis {
  calls = 0;
  readonly keys = new Map<string, number>();

  async set(key: string, _value: string, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null> {
    this.calls++;
    expect(px).toBe('PX');
    expect(nx).toBe('NX');
    if (this.keys.has(key)) return null;
    this.keys.set(key, ms);
    return 'OK';
  }

  /** The bare-nonce claim (its real script runs in nonces.int.test.ts): first use wins. */
  readonly bare = new Set<string>();
  async eval(_script: string, _n: number, key: string | number, nonce: string | number): Promise<number> {
    this.calls++;
    const k = `${key}|${nonce}`;
    if (this.bare.has(k)) return 0;
    this.bare.add(k);
    return 1;
  }
}

const NOW = 1_700_000_000_000;
const SKEW = 300_000;
const BODY = Buffer.from('{"sender_agent_id":"peer-a","memories":[]}', 'utf8');

let dir: string;
const privA = new Uint8Array(randomBytes(32));
const privC = new Uint8Array(randomBytes(32));
const privStranger = new Uint8Array(randomBytes(32));

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'memfed-inbound-'));
  await writeFile(path.join(dir, 'peer-a.pub'), await ed.getPublicKeyAsync(privA));
  await writeFile(path.join(dir, 'peer-c.pub'), await ed.getPublicKeyAsync(privC));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function setup(opts: { requireSig?: boolean; redis?: FakeRedis } = {}) {
  const redis = opts.redis ?? new FakeRedis();
  const policy: InboundPolicy = {
    keys: await KeyRing.load(dir, 'self'), // fresh ring: no cached peer lookups between tests
    nonces: new NonceStore(redis, 'test', SKEW),
    requireSig: opts.requireSig ?? true,
    clockSkewMs: SKEW,
    now: () => NOW,
  };
  return { redis, policy };
}

async function sigHeader(priv: Uint8Array, body: Uint8Array, nonce: string | undefined): Promise<string> {
  const sig = await ed.signAsync(new Uint8Array(postSigningBytes(body, nonce)), priv);
  return `ed25519=${Buffer.from(sig).toString('base64')}`;
}

/** A request as the route builds it: signedBytes over the body the receiver got. */
function request(over: Partial<InboundRequest> & { body?: Uint8Array }): InboundRequest {
  const body = over.body ?? BODY;
  return {
    peerId: 'peer-a',
    signature: undefined,
    nonce: undefined,
    signedBytes: (n) => postSigningBytes(body, n),
    ...over,
  };
}

async function signed(priv: Uint8Array, nonce: string, peerId = 'peer-a', body: Uint8Array = BODY): Promise<InboundRequest> {
  return request({ peerId, nonce, signature: await sigHeader(priv, body, nonce), body });
}

describe('verifyInbound: peer identity', () => {
  it('403 peer_id_header_missing without x-peer-id', async () => {
    const { policy } = await setup();
    expect(await verifyInbound(request({ peerId: undefined }), policy)).toEqual({ ok: false, status: 403, tag: 'peer_id_header_missing' });
    expect(await verifyInbound(request({ peerId: '   ' }), policy)).toEqual({ ok: false, status: 403, tag: 'peer_id_header_missing' });
  });

  it('403 peer_id_invalid for an id outside the agent-id charset, handing back the claim for the refusal record', async () => {
    const { policy } = await setup();
    for (const id of ['has space', 'a\u0000b', 'x'.repeat(129), 'a#b']) {
      const r = await verifyInbound(request({ peerId: id }), policy);
      expect(r, id).toEqual({ ok: false, status: 403, tag: 'peer_id_invalid', peerId: id });
    }
  });
});

describe('verifyInbound: the signature matrix', () => {
  it('sig + enrolled key -> ok', async () => {
    const { policy, redis } = await setup();
    const r = await verifyInbound(await signed(privA, newNonce(NOW)), policy);
    expect(r).toEqual({ ok: true, peerId: 'peer-a', signed: true });
    expect(redis.calls).toBe(1);
  });

  it('trims the peer id header', async () => {
    const { policy } = await setup();
    const req = await signed(privA, newNonce(NOW));
    expect(await verifyInbound({ ...req, peerId: ' peer-a ' }, policy)).toEqual({ ok: true, peerId: 'peer-a', signed: true });
  });

  it('sig + no enrolled key -> 401 x_memory_sig_no_enrolled_key', async () => {
    const { policy, redis } = await setup();
    const r = await verifyInbound(await signed(privStranger, newNonce(NOW), 'peer-b'), policy);
    expect(r).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_no_enrolled_key', peerId: 'peer-b' });
    expect(redis.calls).toBe(0);
  });

  it('no sig + enrolled key -> 401 x_memory_sig_missing (whether or not enrolment is required)', async () => {
    for (const requireSig of [true, false]) {
      const { policy } = await setup({ requireSig });
      const r = await verifyInbound(request({ nonce: newNonce(NOW) }), policy);
      expect(r).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_missing', peerId: 'peer-a' });
    }
  });

  it('no sig + no key -> 401 peer_not_enrolled when enrolment is required', async () => {
    const { policy } = await setup({ requireSig: true });
    expect(await verifyInbound(request({ peerId: 'peer-b' }), policy)).toEqual({ ok: false, status: 401, tag: 'peer_not_enrolled', peerId: 'peer-b' });
  });

  it('no sig + no key -> accepted unsigned when enrolment is not required', async () => {
    const { policy, redis } = await setup({ requireSig: false });
    expect(await verifyInbound(request({ peerId: 'peer-b' }), policy)).toEqual({ ok: true, peerId: 'peer-b', signed: false });
    expect(redis.calls).toBe(0);
  });

  it('a key file appearing later enrols the peer for a new key ring', async () => {
    const { policy } = await setup();
    const priv = new Uint8Array(randomBytes(32));
    const id = `late-${randomUUID()}`;
    expect(await verifyInbound(await signed(priv, newNonce(NOW), id), policy)).toMatchObject({ ok: false, tag: 'x_memory_sig_no_enrolled_key' });
    await writeFile(path.join(dir, `${id}.pub`), await ed.getPublicKeyAsync(priv));
    const fresh = await setup();
    expect(await verifyInbound(await signed(priv, newNonce(NOW), id), fresh.policy)).toEqual({ ok: true, peerId: id, signed: true });
  });
});

describe('verifyInbound: header form', () => {
  it('401 x_memory_sig_malformed', async () => {
    const { policy } = await setup();
    for (const sig of ['ed25519=abc', 'garbage', 'ed25519=', `ed25519=${Buffer.from(randomBytes(63)).toString('base64')}`]) {
      const r = await verifyInbound(request({ nonce: newNonce(NOW), signature: sig }), policy);
      expect(r, sig).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_malformed', peerId: 'peer-a' });
    }
  });

  it('401 x_memory_sig_unknown_algorithm', async () => {
    const { policy } = await setup();
    const sig = `rsa-sha256=${Buffer.from(randomBytes(64)).toString('base64')}`;
    expect(await verifyInbound(request({ nonce: newNonce(NOW), signature: sig }), policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_unknown_algorithm', peerId: 'peer-a' });
  });

  it('accepts parameters after ";" in the signature header', async () => {
    const { policy } = await setup();
    const req = await signed(privA, newNonce(NOW));
    expect(await verifyInbound({ ...req, signature: `${req.signature!};keyid=peer-a` }, policy)).toMatchObject({ ok: true });
  });
});

describe('verifyInbound: bad signatures', () => {
  it('tampered body -> x_memory_sig_bad_signature', async () => {
    const { policy } = await setup();
    const nonce = newNonce(NOW);
    const tampered = Buffer.from(BODY);
    tampered[tampered.length - 3] = 0x31;
    const req = request({ nonce, signature: await sigHeader(privA, BODY, nonce), body: tampered });
    expect(await verifyInbound(req, policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_bad_signature', peerId: 'peer-a' });
  });

  it('signature by another key -> x_memory_sig_bad_signature', async () => {
    const { policy } = await setup();
    expect(await verifyInbound(await signed(privC, newNonce(NOW), 'peer-a'), policy)).toMatchObject({ ok: false, tag: 'x_memory_sig_bad_signature' });
    expect(await verifyInbound(await signed(privStranger, newNonce(NOW), 'peer-a'), policy)).toMatchObject({ ok: false, tag: 'x_memory_sig_bad_signature' });
  });

  it('the signature binds the nonce', async () => {
    const { policy } = await setup();
    const n1 = newNonce(NOW);
    const n2 = newNonce(NOW);
    const swapped = request({ nonce: n2, signature: await sigHeader(privA, BODY, n1) });
    expect(await verifyInbound(swapped, policy)).toMatchObject({ ok: false, tag: 'x_memory_sig_bad_signature' });
    // A legacy (body-only) signature does not cover a nonce that was sent.
    const legacy = request({ nonce: n1, signature: await sigHeader(privA, BODY, undefined) });
    expect(await verifyInbound(legacy, policy)).toMatchObject({ ok: false, tag: 'x_memory_sig_bad_signature' });
  });
});

describe('verifyInbound: nonces', () => {
  it('401 x_memory_nonce_missing', async () => {
    const { policy } = await setup();
    for (const nonce of [undefined, '']) {
      const req = request({ nonce, signature: await sigHeader(privA, BODY, undefined) });
      expect(await verifyInbound(req, policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_nonce_missing', peerId: 'peer-a' });
    }
  });

  it('401 x_memory_nonce_malformed', async () => {
    const { policy, redis } = await setup();
    expect(await verifyInbound(await signed(privA, 'bad nonce!'), policy)).toMatchObject({ ok: false, status: 401, tag: 'x_memory_nonce_malformed' });
    expect(redis.calls).toBe(0);
  });

  it('refuses a replayed memfed nonce', async () => {
    const { policy, redis } = await setup();
    const req = await signed(privA, newNonce(NOW));
    expect(await verifyInbound(req, policy)).toMatchObject({ ok: true });
    expect(await verifyInbound(req, policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_nonce_replay', peerId: 'peer-a' });
    expect(redis.calls).toBe(2);
    // Remembered longer than the whole clock window.
    expect([...redis.keys.values()][0]).toBeGreaterThan(2 * SKEW);
  });

  it('refuses a replay on another replica / after a restart (shared redis)', async () => {
    const redis = new FakeRedis();
    const req = await signed(privA, newNonce(NOW));
    expect(await verifyInbound(req, (await setup({ redis })).policy)).toMatchObject({ ok: true });
    expect(await verifyInbound(req, (await setup({ redis })).policy)).toMatchObject({ ok: false, tag: 'x_memory_nonce_replay' });
  });

  it('the same nonce from two different peers is not a replay', async () => {
    const { policy } = await setup();
    const nonce = newNonce(NOW);
    expect(await verifyInbound(await signed(privA, nonce, 'peer-a'), policy)).toMatchObject({ ok: true });
    expect(await verifyInbound(await signed(privC, nonce, 'peer-c'), policy)).toMatchObject({ ok: true });
  });

  it('refuses memfed nonces outside the clock window, without touching redis', async () => {
    const { policy, redis } = await setup();
    for (const at of [NOW - SKEW - 1, NOW + SKEW + 1, NOW - 86_400_000]) {
      const r = await verifyInbound(await signed(privA, newNonce(at)), policy);
      expect(r, String(at - NOW)).toEqual({ ok: false, status: 401, tag: 'x_memory_nonce_expired', peerId: 'peer-a' });
    }
    expect(redis.calls).toBe(0);
    expect(await verifyInbound(await signed(privA, newNonce(NOW - SKEW)), policy)).toMatchObject({ ok: true });
    expect(await verifyInbound(await signed(privA, newNonce(NOW + SKEW)), policy)).toMatchObject({ ok: true });
  });

  it('uses the wall clock when policy.now is absent', async () => {
    const { policy } = await setup();
    delete policy.now;
    expect(await verifyInbound(await signed(privA, newNonce()), policy)).toMatchObject({ ok: true });
    expect(await verifyInbound(await signed(privA, newNonce(NOW)), policy)).toMatchObject({ ok: false, tag: 'x_memory_nonce_expired' });
  });

  it('refuses a replayed bare UUID nonce through the shared store', async () => {
    const { policy, redis } = await setup();
    const req = await signed(privA, randomUUID());
    expect(await verifyInbound(req, policy)).toEqual({ ok: true, peerId: 'peer-a', signed: true });
    expect(await verifyInbound(req, policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_nonce_replay', peerId: 'peer-a' });
    expect(redis.bare.size).toBe(1);
  });

  it('an uppercase UUID in the memfed form still gets the clock window', async () => {
    const { policy } = await setup();
    const old = `${NOW - 2 * SKEW}.${randomUUID().toUpperCase()}`;
    expect(await verifyInbound(await signed(privA, old), policy)).toMatchObject({ ok: false, tag: 'x_memory_nonce_expired' });
    const fresh = `${NOW}.${randomUUID().toUpperCase()}`;
    expect(await verifyInbound(await signed(privA, fresh), policy)).toMatchObject({ ok: true });
  });
});

describe('verifyInbound: verification before state', () => {
  it('a flood of bad signatures never touches the nonce store', async () => {
    const { policy, redis } = await setup();
    const nonces: string[] = [];
    for (let i = 0; i < 300; i++) {
      const nonce = i % 3 === 0 ? randomUUID() : newNonce(NOW);
      nonces.push(nonce);
      const forged = `ed25519=${Buffer.from(randomBytes(64)).toString('base64')}`;
      const r = await verifyInbound(request({ nonce, signature: forged }), policy);
      expect(r).toMatchObject({ ok: false, tag: 'x_memory_sig_bad_signature' });
    }
    // Signatures by the wrong key, the wrong body, a stranger claiming an enrolled id.
    for (let i = 0; i < 30; i++) {
      expect(await verifyInbound(await signed(privStranger, newNonce(NOW)), policy)).toMatchObject({ ok: false });
    }
    expect(redis.calls).toBe(0);
    expect(redis.keys.size).toBe(0);

    // The forged requests burned none of the nonces: the genuine sender can still use them,
    // and each use of a memfed nonce is one claim in Redis (so the counts above see it).
    for (const nonce of nonces.slice(0, 6)) {
      expect(await verifyInbound(await signed(privA, nonce), policy), nonce).toMatchObject({ ok: true });
    }
    // memfed nonces are keys of their own; bare UUIDs go to the peer's bounded set.
    const memfedForm = nonces.slice(0, 6).filter((n) => n.includes('.')).length;
    expect(memfedForm).toBe(4);
    expect(redis.calls).toBe(6);
    expect(redis.keys.size).toBe(memfedForm);
    expect(redis.bare.size).toBe(6 - memfedForm);
  });

  it('unsigned and malformed requests never touch the nonce store', async () => {
    const { policy, redis } = await setup();
    expect(await verifyInbound(request({ nonce: newNonce(NOW) }), policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_missing', peerId: 'peer-a' });
    expect(await verifyInbound(request({ peerId: 'peer-b', nonce: newNonce(NOW) }), policy)).toEqual({ ok: false, status: 401, tag: 'peer_not_enrolled', peerId: 'peer-b' });
    expect(await verifyInbound(request({ nonce: newNonce(NOW), signature: 'ed25519=AAAA' }), policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_malformed', peerId: 'peer-a' });
    expect(await verifyInbound(request({ nonce: newNonce(NOW), signature: `x=${Buffer.from(randomBytes(64)).toString('base64')}` }), policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_unknown_algorithm', peerId: 'peer-a' });
    expect(await verifyInbound(await signed(privStranger, newNonce(NOW), 'peer-b'), policy)).toEqual({ ok: false, status: 401, tag: 'x_memory_sig_no_enrolled_key', peerId: 'peer-b' });
    expect(redis.calls).toBe(0);
    // The counter sees the store: one genuine request is one claim.
    expect(await verifyInbound(await signed(privA, newNonce(NOW)), policy)).toEqual({ ok: true, peerId: 'peer-a', signed: true });
    expect(redis.calls).toBe(1);
  });
});
