import { randomBytes, randomUUID } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { describe, it, expect } from 'vitest';
import {
  classifyNonce,
  getSigningBytes,
  newNonce,
  parseSignatureHeader,
  postSigningBytes,
  privateKeyObject,
  publicKeyObject,
  signatureHeader,
  verifySignature,
} from '../../src/federation/signing.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const sigBytes = (header: string) => new Uint8Array(Buffer.from(header.slice('ed25519='.length), 'base64'));

// RFC 8032 section 7.1, TEST 1.
const RFC = {
  secret: hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'),
  public: hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'),
  signature: hex('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'),
};

const UUID_V4 = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}';

describe('key objects and RFC 8032', () => {
  it('signs the empty message of test vector 1 exactly', () => {
    const header = signatureHeader(privateKeyObject(RFC.secret), new Uint8Array(0));
    expect(header).toBe(`ed25519=${b64(RFC.signature)}`);
  });

  it('verifies test vector 1 with the raw public key', async () => {
    expect(await ed.getPublicKeyAsync(RFC.secret)).toEqual(RFC.public);
    expect(verifySignature(publicKeyObject(RFC.public), new Uint8Array(0), RFC.signature)).toBe(true);
    expect(verifySignature(publicKeyObject(RFC.public), new Uint8Array([0]), RFC.signature)).toBe(false);
  });

  it('refuses raw keys that are not 32 bytes', () => {
    expect(() => privateKeyObject(new Uint8Array(31))).toThrow(/32 raw bytes/);
    expect(() => privateKeyObject(new Uint8Array(64))).toThrow(/32 raw bytes/);
    expect(() => publicKeyObject(new Uint8Array(33))).toThrow(/32 raw bytes/);
  });
});

describe('cross-check with @noble/ed25519', () => {
  it('a node:crypto signature verifies with noble', async () => {
    for (let i = 0; i < 5; i++) {
      const priv = new Uint8Array(randomBytes(32));
      const pub = await ed.getPublicKeyAsync(priv);
      const msg = postSigningBytes(randomBytes(100 + i * 37), newNonce());
      const header = signatureHeader(privateKeyObject(priv), msg);
      expect(header).toMatch(/^ed25519=[A-Za-z0-9+/]{86}==$/);
      expect(await ed.verifyAsync(sigBytes(header), new Uint8Array(msg), pub)).toBe(true);
      // Ed25519 is deterministic: both libraries produce the same bytes.
      expect(sigBytes(header)).toEqual(await ed.signAsync(new Uint8Array(msg), priv));
    }
  });

  it('a noble signature verifies with node:crypto', async () => {
    const priv = new Uint8Array(randomBytes(32));
    const pub = await ed.getPublicKeyAsync(priv);
    const msg = new Uint8Array(getSigningBytes('/api/v1/sync/since', 'since=x&peer=a', newNonce()));
    const sig = await ed.signAsync(msg, priv);
    expect(verifySignature(publicKeyObject(pub), msg, sig)).toBe(true);
    const header = `ed25519=${b64(sig)}`;
    const parsed = parseSignatureHeader(header);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(verifySignature(publicKeyObject(pub), msg, parsed.signature)).toBe(true);
  });
});

describe('signed bytes', () => {
  it('POST: body || 0x00 || nonce', () => {
    const body = new TextEncoder().encode('{"a":"é"}');
    const out = postSigningBytes(body, 'n-1');
    expect(out).toEqual(Buffer.concat([Buffer.from(body), Buffer.from([0]), Buffer.from('n-1')]));
    expect(out[body.byteLength]).toBe(0);
    expect(out.byteLength).toBe(body.byteLength + 1 + 3);
  });

  it('POST legacy form without a nonce is the body alone', () => {
    const body = new TextEncoder().encode('{"a":1}');
    expect(postSigningBytes(body, undefined)).toEqual(Buffer.from(body));
  });

  it('POST with an empty nonce still appends the separator', () => {
    expect(postSigningBytes(new Uint8Array([1]), '')).toEqual(Buffer.from([1, 0]));
  });

  it('GET: "GET\\n<path>\\n<raw_query>" + 0x00 + nonce', () => {
    const out = getSigningBytes('/api/v1/sync/since', 'since=2024-01-01T00%3A00%3A00Z&peer=a', 'nonce-x');
    expect(out.toString('latin1')).toBe('GET\n/api/v1/sync/since\nsince=2024-01-01T00%3A00%3A00Z&peer=a\u0000nonce-x');
    expect(getSigningBytes('/p', '', undefined).toString()).toBe('GET\n/p\n');
    expect(getSigningBytes('/p', 'q=1', undefined).toString()).toBe('GET\n/p\nq=1');
  });
});

describe('parseSignatureHeader', () => {
  const sig = new Uint8Array(randomBytes(64));
  const good = `ed25519=${b64(sig)}`;

  it('parses the standard form', () => {
    const r = parseSignatureHeader(good);
    expect(r.ok).toBe(true);
    if (r.ok) expect(new Uint8Array(r.signature)).toEqual(sig);
  });

  it('ignores text after the first ";"', () => {
    const r = parseSignatureHeader(`${good};keyid=abc;x=y`);
    expect(r.ok).toBe(true);
    if (r.ok) expect(new Uint8Array(r.signature)).toEqual(sig);
    expect(parseSignatureHeader(`${good}; garbage ===`).ok).toBe(true);
  });

  it('reports an unknown algorithm', () => {
    expect(parseSignatureHeader(`rsa=${b64(sig)}`)).toEqual({ ok: false, tag: 'x_memory_sig_unknown_algorithm' });
    expect(parseSignatureHeader(`ed448=${b64(sig)}`)).toEqual({ ok: false, tag: 'x_memory_sig_unknown_algorithm' });
  });

  it('reports malformed headers', () => {
    const malformed = [
      '',
      'garbage',
      `=${b64(sig)}`,
      'ed25519=',
      `ed25519=${b64(sig).replace(/[A-Za-z]/, '!')}`,
      `ed25519=${b64(new Uint8Array(randomBytes(63)))}`,
      `ed25519=${b64(new Uint8Array(randomBytes(65)))}`,
      `ed25519=${b64(sig).replace(/=+$/, '')}`,
      `ed25519=${Buffer.from(sig).toString('base64url')}`,
      `ed25519=${b64(sig)}x`,
      `;${good}`,
    ];
    for (const h of malformed) {
      expect(parseSignatureHeader(h), JSON.stringify(h)).toEqual({ ok: false, tag: 'x_memory_sig_malformed' });
    }
  });
});

describe('verifySignature', () => {
  it('returns false (never throws) on tampered or truncated input', async () => {
    const priv = new Uint8Array(randomBytes(32));
    const key = publicKeyObject(await ed.getPublicKeyAsync(priv));
    const msg = postSigningBytes(Buffer.from('{"memories":[]}'), newNonce());
    const sig = sigBytes(signatureHeader(privateKeyObject(priv), msg));
    expect(verifySignature(key, msg, sig)).toBe(true);

    const tampered = Buffer.from(msg);
    tampered[3] = tampered[3]! ^ 1;
    expect(verifySignature(key, tampered, sig)).toBe(false);

    const badSig = new Uint8Array(sig);
    badSig[10] = badSig[10]! ^ 0x80;
    expect(verifySignature(key, msg, badSig)).toBe(false);

    expect(verifySignature(key, msg, sig.subarray(0, 63))).toBe(false);
    expect(verifySignature(key, msg, new Uint8Array(0))).toBe(false);
    expect(verifySignature(key, msg, new Uint8Array(128))).toBe(false);

    const otherKey = publicKeyObject(await ed.getPublicKeyAsync(new Uint8Array(randomBytes(32))));
    expect(verifySignature(otherKey, msg, sig)).toBe(false);
  });
});

describe('nonces', () => {
  it('newNonce is <13-digit ms>.<uuid v4>', () => {
    expect(newNonce(1_700_000_000_000)).toMatch(new RegExp(`^1700000000000\\.${UUID_V4}$`));
    const before = Date.now();
    const n = newNonce();
    const after = Date.now();
    const m = new RegExp(`^(\\d{13})\\.${UUID_V4}$`).exec(n);
    expect(m).not.toBeNull();
    const ms = Number(m![1]);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
  });

  it('newNonce is unique', () => {
    const set = new Set(Array.from({ length: 1000 }, () => newNonce(1_700_000_000_000)));
    expect(set.size).toBe(1000);
  });

  it('classifies memfed nonces with their issue time', () => {
    expect(classifyNonce(newNonce(1_712_345_678_901))).toEqual({ kind: 'memfed', issuedAtMs: 1_712_345_678_901 });
  });

  it('classifies bare upstream nonces', () => {
    expect(classifyNonce(randomUUID())).toEqual({ kind: 'bare' });
    expect(classifyNonce('abcdefgh')).toEqual({ kind: 'bare' }); // 8 chars
    expect(classifyNonce('a'.repeat(128))).toEqual({ kind: 'bare' });
    expect(classifyNonce(`170000000000.${randomUUID()}`)).toEqual({ kind: 'bare' }); // 12 digits: not the memfed form
    // The memfed form in any case is still the memfed form (and gets the clock window).
    expect(classifyNonce(`1700000000000.${randomUUID().toUpperCase()}`)).toEqual({ kind: 'memfed', issuedAtMs: 1_700_000_000_000 });
  });

  it('classifies malformed nonces', () => {
    for (const n of ['', 'abcdefg', 'has spaces in it', 'a'.repeat(129), 'a'.repeat(200), 'nonce\u0000nonce', 'nonce;nonce', 'ünïcödé-nonce']) {
      expect(classifyNonce(n), JSON.stringify(n)).toEqual({ kind: 'malformed' });
    }
  });
});
