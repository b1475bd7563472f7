import { createPrivateKey, createPublicKey, randomUUID, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { now } from '../clock.js';

/**
 * Ed25519 request signing as docs/wire.md fixes it. Signing and verifying use node:crypto
 * (RFC 8032, ~10x faster than the pure-JS path in the benchmark); @noble/ed25519 is the
 * reference for key generation and in tests.
 */

// DER prefixes that wrap a raw 32-byte Ed25519 key as PKCS#8 / SPKI.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== 32) throw new Error('Ed25519 private key must be 32 raw bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

export function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== 32) throw new Error('Ed25519 public key must be 32 raw bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** POST: `raw_body || 0x00 || utf8(nonce)`; without a nonce, the raw body alone (legacy). */
export function postSigningBytes(body: Uint8Array, nonce: string | undefined): Buffer {
  return nonce === undefined ? Buffer.from(body) : Buffer.concat([body, Buffer.from([0]), Buffer.from(nonce, 'utf8')]);
}

/** GET: `"GET\n" + path + "\n" + raw_query`, then `0x00` and the nonce. */
export function getSigningBytes(path: string, rawQuery: string, nonce: string | undefined): Buffer {
  const head = Buffer.from(`GET\n${path}\n${rawQuery}`, 'utf8');
  return nonce === undefined ? head : Buffer.concat([head, Buffer.from([0]), Buffer.from(nonce, 'utf8')]);
}

export function signatureHeader(key: KeyObject, bytes: Uint8Array): string {
  return `ed25519=${nodeSign(null, bytes, key).toString('base64')}`;
}

export type SigParse = { ok: true; signature: Buffer } | { ok: false; tag: 'x_memory_sig_malformed' | 'x_memory_sig_unknown_algorithm' };

const B64 = /^[A-Za-z0-9+/]{86}==$/;

/** Parses `ed25519=<padded base64>`; a verifier takes the text before the first `;`. */
export function parseSignatureHeader(header: string): SigParse {
  const value = header.split(';', 1)[0]!.trim();
  const eq = value.indexOf('=');
  if (eq <= 0) return { ok: false, tag: 'x_memory_sig_malformed' };
  if (value.slice(0, eq).toLowerCase() !== 'ed25519') return { ok: false, tag: 'x_memory_sig_unknown_algorithm' };
  const b64 = value.slice(eq + 1);
  if (!B64.test(b64)) return { ok: false, tag: 'x_memory_sig_malformed' };
  const signature = Buffer.from(b64, 'base64');
  return signature.byteLength === 64 ? { ok: true, signature } : { ok: false, tag: 'x_memory_sig_malformed' };
}

export function verifySignature(key: KeyObject, bytes: Uint8Array, signature: Uint8Array): boolean {
  try {
    return nodeVerify(null, bytes, key, signature);
  } catch {
    return false;
  }
}

/** memfed nonce form `<unix-ms>.<uuid>`: time-bounded and remembered by receivers. */
export function newNonce(nowMs = now()): string {
  return `${nowMs}.${randomUUID()}`;
}

// Case-insensitive: an uppercase UUID is still this form, and still gets the clock window.
const MEMFED_NONCE = /^(\d{13})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
const BARE_NONCE = /^[A-Za-z0-9._~+/=-]{8,128}$/;

export type NonceForm = { kind: 'memfed'; issuedAtMs: number } | { kind: 'bare' } | { kind: 'malformed' };

export function classifyNonce(nonce: string): NonceForm {
  const m = MEMFED_NONCE.exec(nonce);
  if (m) return { kind: 'memfed', issuedAtMs: Number(m[1]) };
  return BARE_NONCE.test(nonce) ? { kind: 'bare' } : { kind: 'malformed' };
}
