import type { KeyObject } from 'node:crypto';
import { classifyNonce, parseSignatureHeader, verifySignature } from './signing.js';
import type { NonceStore } from './nonces.js';
import type { KeyRing } from './keys.js';
import { PEER_ID } from './peers.js';
import { now } from '../clock.js';

/** Every refusal of the inbound signature matrix; the API answers it as `{error: tag, code: TAG}`. */
export const REFUSAL_TAGS = [
  'x_memory_sig_missing',
  'x_memory_sig_malformed',
  'x_memory_sig_unknown_algorithm',
  'x_memory_sig_bad_signature',
  'x_memory_sig_no_enrolled_key',
  'x_memory_nonce_missing',
  'x_memory_nonce_malformed',
  'x_memory_nonce_replay',
  'x_memory_nonce_expired',
  'peer_not_enrolled',
  'peer_id_header_missing',
  'peer_id_invalid',
  'peer_removed',
] as const;

export type RefusalTag = (typeof REFUSAL_TAGS)[number];

export type InboundResult =
  | { ok: true; peerId: string; signed: boolean }
  | { ok: false; status: 401 | 403; tag: RefusalTag; peerId?: string };

export interface InboundRequest {
  peerId: string | undefined;
  signature: string | undefined;
  nonce: string | undefined;
  /** The exact bytes the sender signed (built from the raw request). */
  signedBytes: (nonce: string | undefined) => Uint8Array;
}

export interface InboundPolicy {
  keys: KeyRing;
  nonces: NonceStore;
  requireSig: boolean;
  clockSkewMs: number;
  now?: () => number;
}


type Precheck =
  | { ok: false; status: 401 | 403; tag: RefusalTag; peerId?: string }
  | { ok: true; peerId: string; key: KeyObject | null; signature: Buffer | null };

/**
 * The header-only part of the matrix: everything decidable without the body. A push is
 * read (up to tens of MiB) only after this passes, so strangers cannot make us buffer.
 */
export async function precheckInbound(req: Pick<InboundRequest, 'peerId' | 'signature' | 'nonce'>, policy: InboundPolicy): Promise<Precheck> {
  const peerId = req.peerId?.trim();
  if (!peerId) return { ok: false, status: 403, tag: 'peer_id_header_missing' };
  // The invalid claim goes back so the refusal can record it (cut short, made storable).
  if (!PEER_ID.test(peerId)) return { ok: false, status: 403, tag: 'peer_id_invalid', peerId };
  // Removed at runtime (`memfed peers remove`): refused by name, signed or not.
  if (policy.keys.isRemoved(peerId)) return { ok: false, status: 403, tag: 'peer_removed', peerId };
  const key: KeyObject | null = await policy.keys.peerKey(peerId);
  // This node's own id is never a peer, signed or not, whatever FED_REQUIRE_SIG says.
  const self = peerId === policy.keys.selfId;
  if (req.signature === undefined) {
    if (key) return { ok: false, status: 401, tag: 'x_memory_sig_missing', peerId };
    if (policy.requireSig || self) return { ok: false, status: 401, tag: 'peer_not_enrolled', peerId };
    return { ok: true, peerId, key: null, signature: null };
  }
  const parsed = parseSignatureHeader(req.signature);
  if (!parsed.ok) return { ok: false, status: 401, tag: parsed.tag, peerId };
  if (!key) return { ok: false, status: 401, tag: 'x_memory_sig_no_enrolled_key', peerId };
  if (req.nonce === undefined || req.nonce === '') return { ok: false, status: 401, tag: 'x_memory_nonce_missing', peerId };
  if (classifyNonce(req.nonce).kind === 'malformed') return { ok: false, status: 401, tag: 'x_memory_nonce_malformed', peerId };
  return { ok: true, peerId, key, signature: parsed.signature };
}

/**
 * The signature matrix of docs/wire.md. The signature is verified before any state is touched:
 * a request that fails verification never reaches the nonce store, so a flood of bad
 * signatures cannot grow it.
 */
export async function verifyInbound(req: InboundRequest, policy: InboundPolicy): Promise<InboundResult> {
  const pre = await precheckInbound(req, policy);
  if (!pre.ok) return pre;
  const { peerId, key, signature } = pre;
  if (!key || !signature) return { ok: true, peerId, signed: false };
  const nonce = req.nonce!;
  const form = classifyNonce(nonce);
  if (!verifySignature(key, req.signedBytes(nonce), signature)) return { ok: false, status: 401, tag: 'x_memory_sig_bad_signature', peerId };
  if (form.kind === 'memfed') {
    const at = (policy.now ?? now)();
    if (Math.abs(at - form.issuedAtMs) > policy.clockSkewMs) return { ok: false, status: 401, tag: 'x_memory_nonce_expired', peerId };
  }
  if (form.kind === 'malformed' || !(await policy.nonces.claim(peerId, nonce, form.kind))) return { ok: false, status: 401, tag: 'x_memory_nonce_replay', peerId };
  return { ok: true, peerId, signed: true };
}
