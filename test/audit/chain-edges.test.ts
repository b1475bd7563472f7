import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ChainVerifier,
  appendEntries,
  auditKeyRing,
  auditSigner,
  entryHash,
  entrySigningBytes,
  genesisHash,
  keyIdFor,
  signCheckpoint,
  verifyCheckpoint,
  type AuditEntry,
  type AuditSigner,
  type Checkpoint,
  type VerifyFailure,
} from '../../src/audit/chain.js';
import { privateKeyObject, verifySignature } from '../../src/federation/signing.js';

// Everything here is built inside each test (no shared hooks): what the byte layouts,
// the input checks and the verifier's rarer failures do, one case at a time.

const NODE = 'node-a';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const frame = (b: Buffer) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const u = (s: string) => frame(Buffer.from(s, 'utf8'));
const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return frame(b);
};

interface Party {
  secret: Uint8Array;
  public: Uint8Array;
  signer: AuditSigner;
  keys: Map<string, KeyObject>;
}

function party(): Party {
  const secret = new Uint8Array(randomBytes(32));
  const jwk = createPublicKey(privateKeyObject(secret)).export({ format: 'jwk' });
  const pub = new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
  return { secret, public: pub, signer: auditSigner(secret), keys: auditKeyRing([pub]) };
}

const event = (i: number) => ({ kind: 'memory.deleted', at: `2024-05-01T10:00:00.${String(i).padStart(3, '0')}Z`, subject: `m${i}`, details: { i } });
const chain = (p: Party, n: number) => appendEntries(null, NODE, Array.from({ length: n }, (_, i) => event(i + 1)), p.signer);
const cp = (p: Party, es: AuditEntry[], seq: number, at = 't') => signCheckpoint(NODE, seq, es[seq - 1]!.hash, at, p.signer);

function run(p: Party, es: AuditEntry[], opts: { from?: number; checkpoints?: Checkpoint[]; keys?: Map<string, KeyObject> } = {}) {
  const v = new ChainVerifier({ nodeId: NODE, keys: opts.keys ?? p.keys, ...(opts.from ? { from: opts.from } : {}), checkpoints: opts.checkpoints ?? [] });
  for (const e of es) if (v.push(e)) break;
  return v.finish();
}

async function runBatch(p: Party, es: AuditEntry[], opts: { keys?: Map<string, KeyObject> } = {}) {
  const v = new ChainVerifier({ nodeId: NODE, keys: opts.keys ?? p.keys });
  await v.pushBatch(es);
  return v.finish();
}

describe('audit byte layouts', () => {
  it('an entry signature covers frame("memfed.audit.sig.v1") || frame(raw hash bytes)', () => {
    const p = party();
    const [e] = chain(p, 1);
    const bytes = Buffer.concat([u('memfed.audit.sig.v1'), frame(Buffer.from(e!.hash, 'hex'))]);
    expect(entrySigningBytes(e!.hash).equals(bytes)).toBe(true);
    expect(verifySignature(p.keys.get(p.signer.keyId)!, bytes, Buffer.from(e!.signature, 'base64'))).toBe(true);
  });

  it('a checkpoint signature covers frame(tag) || frame(node) || frame(u64 seq) || frame(hash) || frame(at)', () => {
    const p = party();
    const es = chain(p, 3);
    const c = cp(p, es, 3, '2024-05-01T12:00:00Z');
    const bytes = Buffer.concat([u('memfed.audit.checkpoint.v1'), u(NODE), u64(3), u(es[2]!.hash), u('2024-05-01T12:00:00Z')]);
    expect(verifySignature(p.keys.get(p.signer.keyId)!, bytes, Buffer.from(c.signature, 'base64'))).toBe(true);
    expect(c).toEqual({ seq: 3, hash: es[2]!.hash, at: '2024-05-01T12:00:00Z', keyId: p.signer.keyId, signature: c.signature });
  });

  it('entries hash the canonical event with SHA-256 and chain from the genesis hash', () => {
    const p = party();
    const es = chain(p, 2);
    expect(genesisHash(NODE)).toBe(sha(Buffer.concat([u('memfed.audit.genesis.v1'), u(NODE)])));
    expect(es[0]!.prevHash).toBe(genesisHash(NODE));
    expect(es[0]!.payloadHash).toBe(sha(es[0]!.canonical));
    expect(es[1]!.hash).toBe(sha(Buffer.concat([u('memfed.audit.entry.v1'), u64(2), u(es[0]!.hash), u(es[1]!.payloadHash), u(p.signer.keyId)])));
    expect(es.map((e) => e.seq)).toEqual([1, 2]);
    expect(es[1]!.prevHash).toBe(es[0]!.hash);
    expect(Object.keys(es[0]!).sort()).toEqual(['canonical', 'hash', 'keyId', 'payloadHash', 'prevHash', 'seq', 'signature']);
  });

  it('a keyId is the first 16 hex digits of SHA-256 over the raw public key', () => {
    const p = party();
    expect(keyIdFor(p.public)).toBe(sha(Buffer.from(p.public)).slice(0, 16));
    expect(p.signer.keyId).toBe(keyIdFor(p.public));
    expect([...p.keys.keys()]).toEqual([p.signer.keyId]);
  });

  it('multi-byte text is framed by its UTF-8 byte length', () => {
    const node = 'nœud-ü';
    expect(genesisHash(node)).toBe(sha(Buffer.concat([u('memfed.audit.genesis.v1'), u(node)])));
  });
});

describe('audit input checks', () => {
  it('seq 0 is encodable; negative and fractional seqs are refused with the value named', () => {
    const h = 'a'.repeat(64);
    expect(entryHash(0, h, h, 'k')).toMatch(/^[0-9a-f]{64}$/);
    expect(() => entryHash(-1, h, h, 'k')).toThrow(new RangeError('audit seq must be a non-negative safe integer, got -1'));
    expect(() => entryHash(2 ** 53, h, h, 'k')).toThrow(RangeError);
  });

  it('appends after a head: seq continues and the link is the head hash; seq 1 is a valid head', () => {
    const p = party();
    const head = { seq: 1, hash: 'c'.repeat(64) };
    const [e] = appendEntries(head, NODE, [event(2)], p.signer);
    expect(e!.seq).toBe(2);
    expect(e!.prevHash).toBe(head.hash);
    expect(appendEntries(null, NODE, [], p.signer)).toEqual([]);
  });

  it('refuses a head whose seq is below 1 or fractional, naming it', () => {
    const p = party();
    expect(() => appendEntries({ seq: 0, hash: 'c'.repeat(64) }, NODE, [event(1)], p.signer)).toThrow(new RangeError('audit head seq must be >= 1, got 0'));
    expect(() => appendEntries({ seq: 1.5, hash: 'c'.repeat(64) }, NODE, [event(1)], p.signer)).toThrow(RangeError);
  });

  it('refuses a head hash that is not exactly 64 lowercase hex', () => {
    const p = party();
    for (const hash of ['C'.repeat(64), 'c'.repeat(63), 'c'.repeat(65), `x${'c'.repeat(64)}`, `${'c'.repeat(64)}x`, 'g'.repeat(64)]) {
      expect(() => appendEntries({ seq: 1, hash }, NODE, [event(1)], p.signer)).toThrow(new Error('audit head hash must be 64 lowercase hex'));
    }
  });

  it('a checkpoint covers at least one entry and needs a well-formed hash', () => {
    const p = party();
    expect(() => signCheckpoint(NODE, 0, 'a'.repeat(64), 't', p.signer)).toThrow(new RangeError('a checkpoint covers at least one entry'));
    expect(signCheckpoint(NODE, 1, 'a'.repeat(64), 't', p.signer).seq).toBe(1);
    expect(() => signCheckpoint(NODE, 1, 'A'.repeat(64), 't', p.signer)).toThrow(new Error('checkpoint hash must be 64 lowercase hex'));
    expect(() => signCheckpoint(NODE, 1, `${'a'.repeat(64)}0`, 't', p.signer)).toThrow(Error);
  });
});

describe('checkpoint verification', () => {
  /** A checkpoint signed over whatever seq and hash it claims (bypassing signCheckpoint's checks). */
  function forge(p: Party, seq: number, hash: string): Checkpoint {
    const bytes = Buffer.concat([u('memfed.audit.checkpoint.v1'), u(NODE), u64(seq), u(hash), u('t')]);
    return { seq, hash, at: 't', keyId: p.signer.keyId, signature: nodeSign(null, bytes, p.signer.key).toString('base64') };
  }

  it('accepts a good checkpoint at seq 1 and refuses a seq below 1 even when correctly signed', () => {
    const p = party();
    expect(verifyCheckpoint(NODE, forge(p, 1, 'a'.repeat(64)), p.keys)).toBe(true);
    expect(verifyCheckpoint(NODE, forge(p, 0, 'a'.repeat(64)), p.keys)).toBe(false);
    expect(verifyCheckpoint(NODE, { ...forge(p, 1, 'a'.repeat(64)), seq: 1.5 }, p.keys)).toBe(false);
  });

  it('refuses a signed checkpoint whose hash is not 64 lowercase hex', () => {
    const p = party();
    expect(verifyCheckpoint(NODE, forge(p, 2, 'A'.repeat(64)), p.keys)).toBe(false);
  });

  it('refuses an unknown key, another node, and a signature text in a non-canonical spelling', () => {
    const p = party();
    const good = forge(p, 2, 'a'.repeat(64));
    expect(verifyCheckpoint(NODE, good, party().keys)).toBe(false);
    expect(verifyCheckpoint('node-b', good, p.keys)).toBe(false);
    expect(verifyCheckpoint(NODE, { ...good, signature: ` ${good.signature}` }, p.keys)).toBe(false);
    expect(verifyCheckpoint(NODE, { ...good, signature: `${good.signature}A` }, p.keys)).toBe(false);
  });

  it('a key ring entry that is not an Ed25519 key verifies nothing and throws nothing', () => {
    const p = party();
    const good = forge(p, 2, 'a'.repeat(64));
    const x25519 = new Map([[p.signer.keyId, generateKeyPairSync('x25519').publicKey]]);
    expect(verifyCheckpoint(NODE, good, x25519)).toBe(false);
  });

  it('names each checkpoint problem in the verifier failure', () => {
    const p = party();
    const es = chain(p, 2);
    const fail = (c: Checkpoint) => run(p, es, { checkpoints: [c] }) as VerifyFailure;
    expect(fail({ ...cp(p, es, 2), seq: 0 })).toMatchObject({ kind: 'bad_checkpoint', detail: 'checkpoint seq 0 is not a positive integer' });
    expect(fail({ ...cp(p, es, 2), hash: 'x' })).toMatchObject({ kind: 'bad_checkpoint', seq: 2, detail: 'checkpoint at seq 2 has a malformed hash' });
    expect(fail({ ...cp(p, es, 2), keyId: 'nobody' })).toMatchObject({ kind: 'bad_checkpoint', seq: 2, detail: 'checkpoint at seq 2 is signed by unknown key nobody' });
    expect(fail({ ...cp(p, es, 2), at: 'changed' })).toMatchObject({ kind: 'bad_checkpoint', seq: 2, detail: 'checkpoint at seq 2 has an invalid signature' });
  });
});

describe('ChainVerifier edge cases', () => {
  it('reports the lowest bad checkpoint below the anchor, whatever order they are given in', () => {
    const p = party();
    const es = chain(p, 10);
    const bad = (seq: number) => ({ ...cp(p, es, seq), at: 'tampered' });
    const r = run(p, es.slice(7), { from: 9, checkpoints: [bad(5), cp(p, es, 4), bad(3)] });
    expect(r).toMatchObject({ ok: false, kind: 'bad_checkpoint', seq: 3 });
  });

  it('a valid checkpoint below the anchor is no failure', () => {
    const p = party();
    const es = chain(p, 10);
    expect(run(p, es.slice(7), { from: 9, checkpoints: [cp(p, es, 2)] })).toEqual({ ok: true, count: 2, head: { seq: 10, hash: es[9]!.hash }, checkpointsChecked: 0 });
  });

  it('beyond the last entry, the first bad checkpoint in seq order is reported when none is valid', () => {
    const p = party();
    const es = chain(p, 5);
    const bad = (seq: number) => ({ ...cp(p, es, seq), at: 'tampered' });
    expect(run(p, es.slice(0, 2), { checkpoints: [bad(5), bad(4)] })).toMatchObject({ ok: false, kind: 'bad_checkpoint', seq: 4 });
  });

  it('a cut tail is described by where the chain ends, or as empty', () => {
    const p = party();
    const es = chain(p, 5);
    expect(run(p, es.slice(0, 2), { checkpoints: [cp(p, es, 5, 'T5')] })).toEqual({
      ok: false,
      count: 2,
      seq: 3,
      kind: 'behind_checkpoint',
      detail: 'the chain ends at seq 2 but a checkpoint signed at T5 covers seq 5: the tail was cut off',
    });
    expect(run(p, [], { checkpoints: [cp(p, es, 5, 'T5')] })).toMatchObject({
      kind: 'behind_checkpoint',
      seq: 1,
      detail: 'the chain is empty but a checkpoint signed at T5 covers seq 5: the tail was cut off',
    });
  });

  it('with from > 1, an entry other than the anchor first is a gap at the anchor, even if it is lower', () => {
    const p = party();
    const es = chain(p, 10);
    expect(run(p, [es[2]!], { from: 6 })).toMatchObject({
      ok: false,
      kind: 'gap',
      seq: 5,
      detail: 'expected the anchor entry 5 (the one before from=6), found seq 3',
    });
    expect(run(p, [es[6]!], { from: 6 })).toMatchObject({ kind: 'gap', seq: 5 });
  });

  it('a missing anchor is reported at finish', () => {
    const p = party();
    expect(run(p, [], { from: 4 })).toEqual({ ok: false, count: 0, seq: 3, kind: 'gap', detail: 'anchor entry 3 (the one before from=4) was not supplied' });
  });

  it('says whether a duplicate repeats the head exactly or carries other content', () => {
    const p = party();
    const es = chain(p, 4);
    expect(run(p, [es[0]!, es[1]!, es[1]!])).toMatchObject({ kind: 'duplicate', seq: 2, detail: 'seq 2 seen again where seq 3 was expected' });
    const altered = { ...es[1]!, hash: 'f'.repeat(64) };
    expect(run(p, [es[0]!, es[1]!, altered])).toMatchObject({ kind: 'duplicate', seq: 2, detail: 'seq 2 seen again where seq 3 was expected (with different content)' });
    // An older entry replayed is not the head, so it reads as different content.
    expect(run(p, [es[0]!, es[1]!, es[2]!, es[0]!])).toMatchObject({ kind: 'duplicate', seq: 1, detail: 'seq 1 seen again where seq 4 was expected (with different content)' });
  });

  it('an entry below seq 1 before any head is a duplicate with different content', () => {
    const p = party();
    const es = chain(p, 1);
    expect(run(p, [{ ...es[0]!, seq: 0 }])).toMatchObject({ kind: 'duplicate', seq: 0, detail: 'seq 0 seen again where seq 1 was expected (with different content)' });
  });

  it('names the previous seq in a broken link', () => {
    const p = party();
    const es = chain(p, 4);
    const other = appendEntries({ seq: 2, hash: 'd'.repeat(64) }, NODE, [event(3)], p.signer)[0]!;
    expect(run(p, [es[0]!, es[1]!, other])).toMatchObject({ kind: 'broken_link', seq: 3, detail: 'prevHash does not match the hash of seq 2' });
  });

  it('refuses from below 1 with the value named', () => {
    expect(() => new ChainVerifier({ nodeId: NODE, keys: new Map(), from: 0 })).toThrow(new RangeError('from must be a positive integer, got 0'));
  });

  it('after a failure, later batches change nothing: the first failure stands', async () => {
    const p = party();
    const es = chain(p, 6);
    const v = new ChainVerifier({ nodeId: NODE, keys: p.keys });
    const tampered = { ...es[1]!, canonical: '{}' };
    const first = await v.pushBatch([es[0]!, tampered]);
    expect(first).toMatchObject({ kind: 'hash_mismatch', seq: 2 });
    expect(await v.pushBatch([es[4]!, es[5]!])).toBe(first);
    expect(v.push(es[5]!)).toBe(first);
    expect(v.finish()).toMatchObject({ ok: false, kind: 'hash_mismatch', seq: 2, count: 1 });
  });

  it('refuses push() and finish() while a pushBatch() is running, and push() after finish()', async () => {
    const p = party();
    const es = chain(p, 3);
    const v = new ChainVerifier({ nodeId: NODE, keys: p.keys });
    const running = v.pushBatch(es.slice(0, 2));
    expect(() => v.push(es[2]!)).toThrow(new Error('ChainVerifier: await each pushBatch() before pushing more'));
    expect(() => v.finish()).toThrow(new Error('ChainVerifier: a pushBatch() is still running'));
    await expect(v.pushBatch([es[2]!])).rejects.toThrow('await each pushBatch()');
    expect(await running).toBeNull();
    expect(v.push(es[2]!)).toBeNull();
    expect(v.finish()).toMatchObject({ ok: true, count: 3 });
    expect(() => v.push(es[2]!)).toThrow('push after finish()');
  });

  it('a key ring entry that is not an Ed25519 key fails signatures in push and pushBatch alike', async () => {
    const p = party();
    const es = chain(p, 2);
    const x25519 = new Map([[p.signer.keyId, generateKeyPairSync('x25519').publicKey]]);
    expect(run(p, es, { keys: x25519 })).toMatchObject({ kind: 'bad_signature', seq: 1 });
    expect(await runBatch(p, es, { keys: x25519 })).toMatchObject({ kind: 'bad_signature', seq: 1 });
    const garbage = new Map([[p.signer.keyId, 'not a key' as unknown as KeyObject]]);
    expect(run(p, es, { keys: garbage })).toMatchObject({ kind: 'bad_signature', seq: 1 });
    expect(await runBatch(p, es, { keys: garbage })).toMatchObject({ kind: 'bad_signature', seq: 1 });
  });

  it('a signature text with anything around the base64 fails in push and pushBatch', async () => {
    const p = party();
    for (const wrap of [(s: string) => `x${s}`, (s: string) => `${s}x`]) {
      const es = chain(p, 2);
      es[0] = { ...es[0]!, signature: wrap(es[0]!.signature) };
      expect(run(p, es)).toMatchObject({ kind: 'bad_signature', seq: 1 });
      expect(await runBatch(p, es)).toMatchObject({ kind: 'bad_signature', seq: 1 });
    }
  });

  it('counts every checkpoint compared, several at one seq included', () => {
    const p = party();
    const es = chain(p, 4);
    expect(run(p, es, { checkpoints: [cp(p, es, 2), cp(p, es, 2, 'again'), cp(p, es, 4)] })).toMatchObject({ ok: true, checkpointsChecked: 3 });
  });
});
