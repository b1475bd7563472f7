import { createHash, createPublicKey, hash, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { publicKeyObject, privateKeyObject } from '../federation/signing.js';
import { canonicalJson } from '../memory/model.js';

/**
 * The audit chain's pure core (docs/invariants.md, point 9): canonical event bytes, the hash
 * chain, Ed25519 entry signatures, signed checkpoints and a streaming verifier. No
 * database, queue or HTTP here; the store appends what `appendEntries` returns and
 * `memfed audit verify` feeds rows to `ChainVerifier`.
 *
 * Byte layouts (fixed: changing any of them invalidates every stored chain):
 * - every hashed or signed message is `frame(tag) || frame(field)...`, where
 *   `frame(x) = u32be(len(x)) || x`, so no two field lists encode to the same bytes;
 * - strings are UTF-8, `seq` is a u64be, hashes are lowercase hex text;
 * - genesis      = sha256(frame("memfed.audit.genesis.v1") || frame(nodeId))
 * - payloadHash  = sha256(utf8(canonical))
 * - hash         = sha256(frame("memfed.audit.entry.v1") || frame(seq) || frame(prevHash)
 *                          || frame(payloadHash) || frame(keyId))
 * - signature    = Ed25519 over frame("memfed.audit.sig.v1") || frame(raw 32 bytes of
 *                  `hash`), standard padded base64 (tagged because the node's key also
 *                  signs federation requests)
 * - checkpoint   = Ed25519 over frame("memfed.audit.checkpoint.v1") || frame(nodeId)
 *                  || frame(seq) || frame(hash) || frame(at)
 *
 * What the chain can and cannot show: any change to a stored entry, a deletion, a
 * reordering or a duplicate breaks it, and only a holder of a trusted key can produce a
 * chain that verifies. Two things need checkpoints kept where the writer cannot edit
 * them (peers): cutting off the tail (a shorter chain is still a valid chain), and an
 * insider with the real key re-hashing and re-signing everything from some seq on.
 */

export interface AuditEventInput {
  kind: string;
  /** RFC 3339 wire form. */
  at: string;
  actor?: string;
  subject?: string;
  details: Record<string, unknown>;
}

export interface AuditEntry {
  seq: number;
  /** 64 lowercase hex: the previous entry's hash, or the genesis hash for seq 1. */
  prevHash: string;
  payloadHash: string;
  hash: string;
  /** The exact canonical JSON (hashed as UTF-8) that payloadHash covers. */
  canonical: string;
  keyId: string;
  /** Standard base64 of the 64-byte Ed25519 signature over the entry hash bytes. */
  signature: string;
}

export interface Checkpoint {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  signature: string;
}

export interface AuditSigner {
  keyId: string;
  key: KeyObject;
}

const GENESIS_TAG = 'memfed.audit.genesis.v1';
const ENTRY_TAG = 'memfed.audit.entry.v1';
const CHECKPOINT_TAG = 'memfed.audit.checkpoint.v1';
const SIG_TAG = 'memfed.audit.sig.v1';

const HEX64 = /^[0-9a-f]{64}$/;
const SIG_B64 = /^[A-Za-z0-9+/]{86}==$/;

function u64(seq: number): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`audit seq must be a non-negative safe integer, got ${seq}`);
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(seq));
  return b;
}

/** `frame(p1) || frame(p2) ...` with `frame(x) = u32be(len(x)) || x`. */
function framed(parts: (string | Buffer)[]): Buffer {
  const bufs = parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
  const out = Buffer.allocUnsafe(bufs.reduce((n, b) => n + 4 + b.byteLength, 0));
  let off = 0;
  for (const b of bufs) {
    out.writeUInt32BE(b.byteLength, off);
    b.copy(out, off + 4);
    off += 4 + b.byteLength;
  }
  return out;
}

/** What an entry signature covers. */
export function entrySigningBytes(hash: string): Buffer {
  return framed([SIG_TAG, Buffer.from(hash, 'hex')]);
}

function sha256Hex(bytes: Buffer | string): string {
  return hash('sha256', bytes, 'hex');
}

/**
 * The canonical bytes of an event: sorted keys, no undefined. Details go through a JSON
 * round trip first so what is hashed is what JSON can carry (a Date becomes its ISO
 * string instead of canonicalJson's `{}`, NaN becomes null); a BigInt or a cycle throws
 * instead of being recorded wrongly.
 */
export function canonicalEvent(e: AuditEventInput): string {
  const plain: unknown = JSON.parse(JSON.stringify({ kind: e.kind, at: e.at, actor: e.actor, subject: e.subject, details: e.details }));
  return canonicalJson(plain);
}

export function genesisHash(nodeId: string): string {
  return sha256Hex(framed([GENESIS_TAG, nodeId]));
}

export function entryHash(seq: number, prevHash: string, payloadHash: string, keyId: string): string {
  return sha256Hex(framed([ENTRY_TAG, u64(seq), prevHash, payloadHash, keyId]));
}

export function keyIdFor(publicKeyRaw: Uint8Array): string {
  return createHash('sha256').update(publicKeyRaw).digest('hex').slice(0, 16);
}

/** A signer from a raw 32-byte Ed25519 private key; the keyId comes from its public key. */
export function auditSigner(privateKeyRaw: Uint8Array): AuditSigner {
  const key = privateKeyObject(privateKeyRaw);
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('cannot derive the Ed25519 public key');
  return { keyId: keyIdFor(Buffer.from(jwk.x, 'base64url')), key };
}

/** The verifier's key map (keyId -> public key) from raw 32-byte public keys. */
export function auditKeyRing(publicKeysRaw: Iterable<Uint8Array>): Map<string, KeyObject> {
  const ring = new Map<string, KeyObject>();
  for (const raw of publicKeysRaw) ring.set(keyIdFor(raw), publicKeyObject(raw));
  return ring;
}

/**
 * Builds the next entries after `head` (null: the chain is empty, so the first entry is
 * seq 1 and links to the genesis hash). Pure: the caller stores them, under the lock
 * that made `head` current, in the same transaction.
 */
export function appendEntries(
  head: { seq: number; hash: string } | null,
  nodeId: string,
  events: AuditEventInput[],
  signer: AuditSigner,
): AuditEntry[] {
  let seq = head === null ? 0 : head.seq;
  let prevHash = head === null ? genesisHash(nodeId) : head.hash;
  if (head !== null && (!Number.isSafeInteger(seq) || seq < 1)) throw new RangeError(`audit head seq must be >= 1, got ${seq}`);
  if (!HEX64.test(prevHash)) throw new Error('audit head hash must be 64 lowercase hex');
  const out: AuditEntry[] = [];
  for (const event of events) {
    seq += 1;
    const canonical = canonicalEvent(event);
    const payloadHash = sha256Hex(canonical);
    const hash = entryHash(seq, prevHash, payloadHash, signer.keyId);
    const signature = nodeSign(null, entrySigningBytes(hash), signer.key).toString('base64');
    out.push({ seq, prevHash, payloadHash, hash, canonical, keyId: signer.keyId, signature });
    prevHash = hash;
  }
  return out;
}

function checkpointBytes(nodeId: string, seq: number, hash: string, at: string): Buffer {
  return framed([CHECKPOINT_TAG, nodeId, u64(seq), hash, at]);
}

export function signCheckpoint(nodeId: string, seq: number, hash: string, at: string, signer: AuditSigner): Checkpoint {
  if (seq < 1) throw new RangeError('a checkpoint covers at least one entry');
  if (!HEX64.test(hash)) throw new Error('checkpoint hash must be 64 lowercase hex');
  const signature = nodeSign(null, checkpointBytes(nodeId, seq, hash, at), signer.key).toString('base64');
  return { seq, hash, at, keyId: signer.keyId, signature };
}

/** Decodes a signature only in its one canonical spelling, so its text cannot be altered unnoticed. */
function decodeSignature(text: string): Buffer | null {
  if (!SIG_B64.test(text)) return null;
  const sig = Buffer.from(text, 'base64');
  return sig.toString('base64') === text ? sig : null;
}

function verifyBytes(key: KeyObject, bytes: Buffer, sig: Buffer): boolean {
  try {
    return nodeVerify(null, bytes, key, sig);
  } catch {
    return false;
  }
}

export function verifyCheckpoint(nodeId: string, cp: Checkpoint, keys: Map<string, KeyObject>): boolean {
  return checkpointProblem(nodeId, cp, keys) === null;
}

function checkpointProblem(nodeId: string, cp: Checkpoint, keys: Map<string, KeyObject>): string | null {
  if (!Number.isSafeInteger(cp.seq) || cp.seq < 1) return `checkpoint seq ${String(cp.seq)} is not a positive integer`;
  if (!HEX64.test(cp.hash)) return `checkpoint at seq ${cp.seq} has a malformed hash`;
  const key = keys.get(cp.keyId);
  if (key === undefined) return `checkpoint at seq ${cp.seq} is signed by unknown key ${cp.keyId}`;
  const sig = decodeSignature(cp.signature);
  if (sig === null || !verifyBytes(key, checkpointBytes(nodeId, cp.seq, cp.hash, cp.at), sig)) {
    return `checkpoint at seq ${cp.seq} has an invalid signature`;
  }
  return null;
}

export type VerifyFailureKind =
  | 'hash_mismatch'
  | 'bad_signature'
  | 'unknown_key'
  | 'broken_link'
  | 'gap'
  | 'duplicate'
  | 'behind_checkpoint'
  | 'fork'
  | 'genesis_mismatch'
  | 'bad_checkpoint';

export interface VerifyFailure {
  seq: number;
  kind: VerifyFailureKind;
  detail: string;
}

export type VerifyResult =
  | { ok: true; count: number; head: { seq: number; hash: string } | null; checkpointsChecked: number }
  | ({ ok: false; count: number } & VerifyFailure);

export interface ChainVerifierOptions {
  nodeId: string;
  /** Trusted public keys by keyId (`auditKeyRing`). Retired keys stay here so old entries verify. */
  keys: Map<string, KeyObject>;
  /**
   * Verify from this seq on (default 1). With from > 1 the first entry pushed must be
   * seq from-1, the anchor: it is checked on its own (hashes, key, signature) and gives
   * the link for `from`, but is not counted. Nothing is claimed about entries before it.
   */
  from?: number;
  /**
   * Checkpoints to hold the chain against (local table and/or fetched from peers). They
   * are given up front so each is compared while its entry streams past: memory stays
   * constant in the chain length, and a fork is reported in seq order with every other
   * failure.
   */
  checkpoints?: Checkpoint[];
}

/**
 * Streaming verifier: push entries in seq order (one at a time, or in batches so the
 * signature checks run on the libuv pool), then call finish(). It stops at the first
 * failure in seq order and returns that failure from every later push and from finish().
 *
 * Per entry, in this order:
 * 1. seq is the next expected one; a seq already passed is `duplicate` (reported at that
 *    seq), a larger one is `gap` (reported at the first missing seq). Checking position
 *    first means a deleted, reordered or renumbered entry is reported where the chain
 *    first goes wrong rather than at whatever seq the stray entry claims.
 * 2. payloadHash = sha256(canonical), then hash = entryHash(...): `hash_mismatch`.
 * 3. keyId is trusted (`unknown_key`), signature verifies over the hash (`bad_signature`).
 * 4. prevHash links to the previous hash (`broken_link`), or for seq 1 to the genesis hash
 *    of this node (`genesis_mismatch`). The link is checked last because it only says
 *    something once the entry itself is known to be authentic.
 * 5. Every checkpoint at this seq must verify (`bad_checkpoint`) and carry this hash
 *    (`fork`: someone holding a trusted key rewrote history at or before this seq, after
 *    the checkpoint was signed).
 * finish(): a valid checkpoint beyond the last entry means the tail was cut off
 * (`behind_checkpoint`, reported at the first missing seq). Without such a checkpoint a
 * truncated tail is indistinguishable from a chain that was never longer.
 *
 * finish() takes no checkpoints: they come through the constructor so nothing but the
 * pending checkpoints is held (see ChainVerifierOptions). `checkpointsChecked` counts
 * checkpoints compared with an entry; those below the anchor (from > 1) only have their
 * signatures checked.
 */
export class ChainVerifier {
  readonly #nodeId: string;
  readonly #keys: Map<string, KeyObject>;
  readonly #from: number;
  /** Checkpoints not yet reached, by seq. */
  readonly #pending = new Map<number, Checkpoint[]>();
  #expected: number;
  #prevHash: string | null;
  #head: { seq: number; hash: string } | null = null;
  #count = 0;
  #checkpointsChecked = 0;
  #failure: VerifyFailure | null = null;
  #finished = false;
  #busy = false;

  constructor(opts: ChainVerifierOptions) {
    const from = opts.from ?? 1;
    if (!Number.isSafeInteger(from) || from < 1) throw new RangeError(`from must be a positive integer, got ${from}`);
    this.#nodeId = opts.nodeId;
    this.#keys = opts.keys;
    this.#from = from;
    this.#expected = from === 1 ? 1 : from - 1;
    this.#prevHash = from === 1 ? genesisHash(opts.nodeId) : null;

    // Checkpoints below the anchor cannot be compared; only their signatures are checked
    // (first, as they sit at lower seqs than anything streamed).
    const sorted = [...(opts.checkpoints ?? [])].sort((a, b) => a.seq - b.seq);
    for (const cp of sorted) {
      const inRange = Number.isSafeInteger(cp.seq) && cp.seq >= this.#expected;
      if (inRange) {
        const list = this.#pending.get(cp.seq);
        if (list) list.push(cp);
        else this.#pending.set(cp.seq, [cp]);
        continue;
      }
      const problem = checkpointProblem(this.#nodeId, cp, this.#keys);
      if (problem !== null && this.#failure === null) this.#failure = { seq: cp.seq, kind: 'bad_checkpoint', detail: problem };
    }
  }

  /** Checks the next entry; null if it is fine, else the (first) failure. */
  push(entry: AuditEntry): VerifyFailure | null {
    this.#assertOpen();
    if (this.#failure) return this.#failure;
    return this.#accept(entry, undefined);
  }

  /**
   * Like push() for each entry in order, but the signatures of the whole batch are
   * verified concurrently on the libuv thread pool first (about twice the single-thread
   * rate on 2 cores). Results are consumed in seq order, so the first failure is the same
   * one push() would report.
   */
  async pushBatch(entries: readonly AuditEntry[]): Promise<VerifyFailure | null> {
    this.#assertOpen();
    if (this.#failure) return this.#failure;
    this.#busy = true;
    try {
      const sigs = entries.map((e) => this.#verifyAsync(e));
      // The hashes are computed on this thread while the pool verifies the signatures.
      const hashes = entries.map((e) => this.#hashProblem(e));
      for (let i = 0; i < entries.length; i++) {
        const failure = this.#accept(entries[i]!, await sigs[i], hashes[i]);
        if (failure) return failure;
      }
      return null;
    } finally {
      this.#busy = false;
    }
  }

  finish(): VerifyResult {
    if (this.#busy) throw new Error('ChainVerifier: a pushBatch() is still running');
    this.#finished = true;
    if (!this.#failure) this.#failure = this.#finalChecks();
    if (this.#failure) return { ok: false, count: this.#count, ...this.#failure };
    return { ok: true, count: this.#count, head: this.#head, checkpointsChecked: this.#checkpointsChecked };
  }

  #assertOpen(): void {
    if (this.#finished) throw new Error('ChainVerifier: push after finish()');
    if (this.#busy) throw new Error('ChainVerifier: await each pushBatch() before pushing more');
  }

  #fail(seq: number, kind: VerifyFailureKind, detail: string): VerifyFailure {
    this.#failure = { seq, kind, detail };
    return this.#failure;
  }

  /** Which of the entry's own hashes is wrong, or null (the content checks of #accept). */
  #hashProblem(e: AuditEntry): 'payload' | 'entry' | null {
    if (sha256Hex(e.canonical) !== e.payloadHash) return 'payload';
    if (entryHash(e.seq, e.prevHash, e.payloadHash, e.keyId) !== e.hash) return 'entry';
    return null;
  }

  /**
   * `sigOk` and `hashes` are precomputed results (pushBatch), or undefined to check inline;
   * the checks are judged in the same order either way, so the first failure is the same.
   */
  #accept(e: AuditEntry, sigOk: boolean | undefined, hashes?: 'payload' | 'entry' | null): VerifyFailure | null {
    const expected = this.#expected;
    const isAnchor = this.#prevHash === null;
    if (e.seq !== expected) {
      if (isAnchor) {
        return this.#fail(expected, 'gap', `expected the anchor entry ${expected} (the one before from=${this.#from}), found seq ${String(e.seq)}`);
      }
      if (Number.isSafeInteger(e.seq) && e.seq < expected) {
        const same = this.#head !== null && this.#head.seq === e.seq && this.#head.hash === e.hash;
        return this.#fail(e.seq, 'duplicate', `seq ${e.seq} seen again where seq ${expected} was expected${same ? '' : ' (with different content)'}`);
      }
      return this.#fail(expected, 'gap', `expected seq ${expected}, found seq ${String(e.seq)}`);
    }

    const hashProblem = hashes === undefined ? this.#hashProblem(e) : hashes;
    if (hashProblem === 'payload') return this.#fail(expected, 'hash_mismatch', 'canonical bytes do not match payloadHash');
    if (hashProblem === 'entry') return this.#fail(expected, 'hash_mismatch', 'entry hash does not match seq, prevHash, payloadHash and keyId');
    const key = this.#keys.get(e.keyId);
    if (key === undefined) return this.#fail(expected, 'unknown_key', `signed by unknown key ${e.keyId}`);
    const ok = sigOk ?? this.#verifySync(e, key);
    if (!ok) return this.#fail(expected, 'bad_signature', `signature does not verify under key ${e.keyId}`);

    if (!isAnchor && e.prevHash !== this.#prevHash) {
      return expected === 1
        ? this.#fail(1, 'genesis_mismatch', `seq 1 does not link to the genesis hash of node ${this.#nodeId}`)
        : this.#fail(expected, 'broken_link', `prevHash does not match the hash of seq ${expected - 1}`);
    }

    const cps = this.#pending.get(expected);
    if (cps) {
      this.#pending.delete(expected);
      for (const cp of cps) {
        const problem = checkpointProblem(this.#nodeId, cp, this.#keys);
        if (problem !== null) return this.#fail(expected, 'bad_checkpoint', problem);
        if (cp.hash !== e.hash) {
          return this.#fail(expected, 'fork', `checkpoint signed at ${cp.at} holds a different hash for seq ${expected}: history was rewritten at or before it`);
        }
        this.#checkpointsChecked += 1;
      }
    }

    this.#prevHash = e.hash;
    this.#head = { seq: e.seq, hash: e.hash };
    this.#expected = expected + 1;
    if (!isAnchor) this.#count += 1;
    return null;
  }

  #verifySync(e: AuditEntry, key: KeyObject): boolean {
    const sig = decodeSignature(e.signature);
    return sig !== null && HEX64.test(e.hash) && verifyBytes(key, entrySigningBytes(e.hash), sig);
  }

  /** Never rejects; resolves false for anything that cannot verify. */
  #verifyAsync(e: AuditEntry): Promise<boolean> {
    const key = this.#keys.get(e.keyId);
    const sig = decodeSignature(e.signature);
    if (key === undefined || sig === null || !HEX64.test(e.hash)) return Promise.resolve(false);
    return new Promise((resolve) => {
      try {
        nodeVerify(null, entrySigningBytes(e.hash), key, sig, (err, ok) => resolve(err === null && ok));
      } catch {
        resolve(false);
      }
    });
  }

  #finalChecks(): VerifyFailure | null {
    if (this.#prevHash === null) {
      return { seq: this.#expected, kind: 'gap', detail: `anchor entry ${this.#expected} (the one before from=${this.#from}) was not supplied` };
    }
    // Everything left in #pending lies beyond the last entry.
    const left = [...this.#pending.values()].flat();
    let bad: VerifyFailure | null = null;
    for (const cp of left) {
      const problem = checkpointProblem(this.#nodeId, cp, this.#keys);
      if (problem === null) {
        const end = this.#head === null ? 'the chain is empty' : `the chain ends at seq ${this.#head.seq}`;
        return { seq: this.#expected, kind: 'behind_checkpoint', detail: `${end} but a checkpoint signed at ${cp.at} covers seq ${cp.seq}: the tail was cut off` };
      }
      if (bad === null) bad = { seq: cp.seq, kind: 'bad_checkpoint', detail: problem };
    }
    return bad;
  }
}
