import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { classifyNonce, parseSignatureHeader, privateKeyObject, signatureHeader, verifySignature } from '../../src/federation/signing.js';
import { parsePushBody } from '../../src/federation/wire.js';
import { ApiError } from '../../src/errors.js';

const key = () => privateKeyObject(new Uint8Array(randomBytes(32)));
const sigText = () => signatureHeader(key(), Buffer.from('x')).slice('ed25519='.length);

describe('x-memory-sig parsing', () => {
  it('tolerates whitespace around the value', () => {
    const s = sigText();
    expect(parseSignatureHeader(` ed25519=${s} `)).toMatchObject({ ok: true });
    expect(parseSignatureHeader(`ed25519=${s}\t; v=1`)).toMatchObject({ ok: true });
  });

  it('refuses characters before the base64, even ones a base64 decoder would skip', () => {
    const s = sigText();
    expect(parseSignatureHeader(`ed25519=!${s}`)).toEqual({ ok: false, tag: 'x_memory_sig_malformed' });
    expect(parseSignatureHeader(`ed25519=${s}!`)).toEqual({ ok: false, tag: 'x_memory_sig_malformed' });
  });
});

describe('verifySignature', () => {
  it('a key that cannot verify Ed25519 yields false, never an exception', () => {
    const k = key();
    const sig = Buffer.from(signatureHeader(k, Buffer.from('x')).slice(8), 'base64');
    expect(verifySignature(generateKeyPairSync('x25519').publicKey, Buffer.from('x'), sig)).toBe(false);
    expect(verifySignature('garbage' as unknown as KeyObject, Buffer.from('x'), sig)).toBe(false);
  });
});

describe('nonce forms', () => {
  it('the memfed form must be the whole nonce: anything around it makes it a bare nonce', () => {
    const n = `1700000000000.${randomUUID()}`;
    expect(classifyNonce(n)).toEqual({ kind: 'memfed', issuedAtMs: 1700000000000 });
    expect(classifyNonce(`x${n}`)).toEqual({ kind: 'bare' });
    expect(classifyNonce(`${n}x`)).toEqual({ kind: 'bare' });
  });
});

describe('push body refusals', () => {
  function refused(body: unknown): ApiError {
    try {
      parsePushBody(body, '2024-01-01T00:00:00.000000+00:00');
    } catch (err) {
      expect(err).toBeInstanceOf(ApiError);
      return err as ApiError;
    }
    throw new Error('expected a refusal');
  }

  it('a body that is not an object is INVALID_PUSH, saying so', () => {
    for (const b of [null, [], 'x']) {
      const e = refused(b);
      expect(e.status).toBe(400);
      expect(e.code).toBe('INVALID_PUSH');
      expect(e.message).toBe('sync_push body must be a JSON object');
    }
    expect(refused({ memories: [] }).code).toBe('INVALID_PUSH');
  });

  it('reports an invalid tombstone or deletion id cut to 128 characters', () => {
    const long = `${'a'.repeat(200)} b`;
    const p = parsePushBody({ sender_agent_id: 'peer-b', memories: [], tombstones: [{ id: long, deleted_at: 'x' }], deletions: [long] }, '2024-01-01T00:00:00.000000+00:00');
    expect(p.skipped.map((s) => s.id)).toEqual(['a'.repeat(128), 'a'.repeat(128)]);
  });
});
