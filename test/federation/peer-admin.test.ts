import { randomBytes } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/errors.js';
import { checkNewPeer, checkPeerId, parsePublicKey } from '../../src/federation/peer-admin.js';

const code = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return err instanceof ApiError ? `${err.status} ${err.code}` : String(err);
  }
  return 'accepted';
};

describe('enrolling a peer key', async () => {
  const pub = Buffer.from(await ed.getPublicKeyAsync(randomBytes(32)));

  it('takes the raw 32-byte .pub file or its base64 (text, with surrounding whitespace), as the same key', () => {
    expect(parsePublicKey(pub)).toEqual(pub);
    expect(parsePublicKey(pub.toString('base64'))).toEqual(pub);
    expect(parsePublicKey(Buffer.from(`${pub.toString('base64')}\n`))).toEqual(pub);
  });

  it('refuses anything else as INVALID_KEY', () => {
    for (const bad of [Buffer.alloc(31), Buffer.alloc(33), 'AAAA', `${pub.toString('base64')}x`, 'not base64!', '', Buffer.from(pub.toString('hex'))]) {
      expect(code(() => parsePublicKey(bad))).toBe('400 INVALID_KEY');
    }
  });
});

describe('peer input, by the FED_PEERS rules', () => {
  it('normalizes like FED_PEERS (trailing slash cut, default flavour)', () => {
    expect(checkNewPeer({ id: 'node-d', url: 'http://h:1/' }, 'self')).toEqual({ spec: { id: 'node-d', url: 'http://h:1', flavour: 'memfed' }, key: null });
  });

  it('refuses bad ids, URLs, flavours, non-strings and the node itself as INVALID_PEER', () => {
    const cases: Array<Record<string, unknown>> = [{ url: 'http://h' }, { id: 'a/b', url: 'http://h' }, { id: 'p', url: 'file:///x' }, { id: 'p' }, { id: 'p', url: 'http://h', flavour: 'x' }, { id: 7, url: 'http://h' }, { id: 'self', url: 'http://h' }];
    for (const c of cases) expect(code(() => checkNewPeer(c, 'self'))).toBe('400 INVALID_PEER');
    expect(code(() => checkPeerId('a b'))).toBe('400 INVALID_PEER');
  });
});
