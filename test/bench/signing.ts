import { randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { newNonce, parseSignatureHeader, postSigningBytes, privateKeyObject, publicKeyObject, signatureHeader, verifySignature } from '../../src/federation/signing.js';
import type { BenchContext } from './context.js';
import { interleavedMedians, opsPerSecAsync, opsPerSecSync } from './stats.js';

/**
 * Section 1: request signing. memfed's path (postSigningBytes + signatureHeader, and
 * verifySignature) against raw node:crypto on the same bytes, and node:crypto against
 * @noble/ed25519 v3 (the pure-JS reference).
 */
export async function signingSection(ctx: BenchContext): Promise<void> {
  const { report } = ctx;
  const ms = ctx.size(200, 100);
  const reps = ctx.size(5, 3);
  const priv = randomBytes(32);
  const pub = await ed.getPublicKeyAsync(priv);
  const privKey = privateKeyObject(priv);
  const pubKey = publicKeyObject(pub);
  const nonce = newNonce();

  for (const [label, size] of [['1 KB', 1024], ['64 KB', 64 * 1024]] as const) {
    const body = randomBytes(size);
    const bytes = postSigningBytes(body, nonce);
    const nativeSig = nodeSign(null, bytes, privKey);
    const nobleSig = await ed.signAsync(bytes, priv);
    if (!nativeSig.equals(Buffer.from(nobleSig))) throw new Error('node:crypto and @noble/ed25519 signatures differ (RFC 8032 is deterministic)');
    const header = signatureHeader(privKey, bytes);
    const parsed = parseSignatureHeader(header);
    if (!parsed.ok || !verifySignature(pubKey, bytes, parsed.signature)) throw new Error('memfed signature does not verify');

    const m = await interleavedMedians(reps, {
      memfedSign: () => opsPerSecSync(() => signatureHeader(privKey, postSigningBytes(body, nonce)), ms),
      nativeSign: () => opsPerSecSync(() => nodeSign(null, bytes, privKey), ms),
      nobleSign: () => opsPerSecAsync(() => ed.signAsync(bytes, priv), ms),
      memfedVerify: () => opsPerSecSync(() => verifySignature(pubKey, postSigningBytes(body, nonce), nativeSig), ms),
      nativeVerify: () => opsPerSecSync(() => nodeVerify(null, bytes, pubKey, nativeSig), ms),
      nobleVerify: () => opsPerSecAsync(() => ed.verifyAsync(nobleSig, bytes, pub), ms),
    });
    const { memfedSign, nativeSign, nobleSign, memfedVerify, nativeVerify, nobleVerify } = m;

    report.add({ metric: `sign ${label} memfed`, value: memfedSign, unit: 'ops/s', baselineLabel: 'raw node:crypto sign', baseline: nativeSign });
    report.add({ metric: `sign ${label} node:crypto`, value: nativeSign, unit: 'ops/s', baselineLabel: '@noble/ed25519 signAsync', baseline: nobleSign });
    report.add({ metric: `verify ${label} memfed`, value: memfedVerify, unit: 'ops/s', baselineLabel: 'raw node:crypto verify', baseline: nativeVerify });
    report.add({ metric: `verify ${label} node:crypto`, value: nativeVerify, unit: 'ops/s', baselineLabel: '@noble/ed25519 verifyAsync', baseline: nobleVerify });
  }
  report.note('signatures identical across node:crypto and @noble/ed25519; memfed figures include building the signed bytes (body || 0x00 || nonce) and the header');
}
