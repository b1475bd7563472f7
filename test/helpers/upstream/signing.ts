import { getSigningBytes, postSigningBytes, publicKeyObject, verifySignature } from '../../../src/federation/signing.js';

/**
 * upstream's signature check (src/federation/signing.rs verify_header /
 * verify_header_with_nonce, src/handlers/federation_signing_check.rs). memfed's byte builders
 * (postSigningBytes, getSigningBytes) produce the same bytes upstream signs: POST
 * `body || 0x00 || nonce` (body alone without a nonce header), GET `"GET\n" + path + "\n" +
 * raw_query` then `0x00 || nonce`.
 */
export type SigTag = 'x_memory_sig_missing' | 'x_memory_sig_unknown_algorithm' | 'x_memory_sig_malformed' | 'x_memory_sig_bad_signature';

/**
 * signing.rs verify_header: the text before the first `;`, trimmed; the prefix `ed25519=` is
 * case-sensitive (else unknown algorithm); base64 STANDARD of base64 0.22 (padding required,
 * canonical trailing bits); exactly 64 bytes.
 */
export function verifyUpstreamSig(header: string, signed: Uint8Array, pub: Buffer): SigTag | null {
  const primary = header.split(';')[0]!.trim();
  if (!primary.startsWith('ed25519=')) return 'x_memory_sig_unknown_algorithm';
  const b64 = primary.slice('ed25519='.length);
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) return 'x_memory_sig_malformed';
  const raw = Buffer.from(b64, 'base64');
  if (raw.toString('base64') !== b64) return 'x_memory_sig_malformed';
  if (raw.byteLength !== 64) return 'x_memory_sig_malformed';
  let key;
  try {
    key = publicKeyObject(pub);
  } catch {
    return 'x_memory_sig_bad_signature';
  }
  return verifySignature(key, signed, raw) ? null : 'x_memory_sig_bad_signature';
}

export const postBytes = (body: Uint8Array, nonce: string | undefined) => postSigningBytes(body, nonce);
export const getBytes = (path: string, query: string, nonce: string | undefined) => getSigningBytes(path, query, nonce);

// src/identity/replay.rs: FEDERATION_NONCE_CAPACITY_PER_PEER, FEDERATION_NONCE_MAX_PEERS.
export const NONCE_CAPACITY_PER_PEER = 10_000;
export const NONCE_MAX_PEERS = 1024;

/**
 * src/identity/replay.rs FederationNonceCache::record_and_check: per peer id a FIFO of at most
 * 10,000 nonces (the oldest evicted, so it can replay again); at most 1,024 peers, the least
 * recently touched evicted. Any non-empty string is a nonce (no form, no clock). Persisted
 * across restarts upstream; in memory here (a test peer lives for one test file).
 */
export class NonceCache {
  private readonly peers = new Map<string, { order: string[]; seen: Set<string>; touch: number }>();
  private touch = 0;
  evictions = 0;

  recordAndCheck(peerId: string, nonce: string): 'fresh' | 'replay' {
    if (!this.peers.has(peerId) && this.peers.size >= NONCE_MAX_PEERS) {
      let lru: string | undefined;
      let min = Infinity;
      for (const [k, s] of this.peers) {
        if (s.touch < min) {
          min = s.touch;
          lru = k;
        }
      }
      if (lru !== undefined) this.peers.delete(lru);
    }
    let slot = this.peers.get(peerId);
    if (!slot) this.peers.set(peerId, (slot = { order: [], seen: new Set(), touch: 0 }));
    slot.touch = this.touch++;
    if (slot.seen.has(nonce)) return 'replay';
    if (slot.order.length >= NONCE_CAPACITY_PER_PEER) {
      slot.seen.delete(slot.order.shift()!);
      this.evictions++;
    }
    slot.order.push(nonce);
    slot.seen.add(nonce);
    return 'fresh';
  }
}
