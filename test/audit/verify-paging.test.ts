import { randomBytes } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { appendEntries, auditKeyRing, auditSigner, signCheckpoint, type AuditEntry, type AuditSigner, type Checkpoint } from '../../src/audit/chain.js';
import type { Db } from '../../src/db/client.js';

// verifyStoredChain's paging over the two store reads, without a database: the store
// module is replaced by an in-memory chain that records every read.
const store = vi.hoisted(() => ({
  entries: [] as AuditEntry[],
  checkpoints: [] as Checkpoint[],
  reads: [] as string[],
  /** Reads from this seq on reject (a lost connection). */
  failFrom: Number.POSITIVE_INFINITY,
}));

vi.mock('../../src/store/audit.js', () => ({
  readAuditPage: (_db: unknown, fromSeq: number, limit: number) => {
    store.reads.push(`entries from ${fromSeq} limit ${limit}`);
    if (fromSeq >= store.failFrom) return Promise.reject(new Error(`connection lost reading from ${fromSeq}`));
    return Promise.resolve(store.entries.filter((e) => e.seq >= fromSeq).slice(0, limit));
  },
  listCheckpoints: (_db: unknown, afterSeq: number, limit: number) => {
    store.reads.push(`checkpoints after ${afterSeq} limit ${limit}`);
    return Promise.resolve(store.checkpoints.filter((c) => c.seq > afterSeq).slice(0, limit));
  },
}));

const { verifyStoredChain } = await import('../../src/audit/verify.js');

const NODE = 'node-a';
const db = {} as Db;
let signer: AuditSigner;
let keys: ReturnType<typeof auditKeyRing>;

let built: AuditEntry[] = [];
/** The first n entries of one chain built once (signing 5003 entries is the slow part). */
const chain = (n: number): AuditEntry[] => built.slice(0, n);

/** A checkpoint that fails on its own (malformed hash), without a signature check. */
const malformed = (seq: number): Checkpoint => ({ seq, hash: 'not-hex', at: 't', keyId: 'k', signature: 's' });

beforeAll(async () => {
  const secret = new Uint8Array(randomBytes(32));
  signer = auditSigner(secret);
  keys = auditKeyRing([await ed.getPublicKeyAsync(secret)]);
  const events = Array.from({ length: 5003 }, (_, i) => ({ kind: 'memory.deleted', at: '2024-05-01T00:00:00.000Z', subject: `m${i + 1}`, details: {} }));
  built = appendEntries(null, NODE, events, signer);
});

beforeEach(() => {
  store.entries = [];
  store.checkpoints = [];
  store.reads = [];
  store.failFrom = Number.POSITIVE_INFINITY;
});

describe('verifyStoredChain', () => {
  it('verifies a short stored chain against its stored checkpoints, reading each table once', async () => {
    store.entries = chain(12);
    store.checkpoints = [signCheckpoint(NODE, 5, store.entries[4]!.hash, 't', signer)];
    const r = await verifyStoredChain(db, { nodeId: NODE, keys });
    expect(r).toEqual({ ok: true, count: 12, head: { seq: 12, hash: store.entries[11]!.hash }, checkpointsChecked: 1 });
    expect(store.reads).toEqual(['checkpoints after 0 limit 10000', 'entries from 1 limit 5000']);
  });

  it('an empty chain verifies with nothing counted', async () => {
    expect(await verifyStoredChain(db, { nodeId: NODE, keys })).toEqual({ ok: true, count: 0, head: null, checkpointsChecked: 0 });
  });

  it('holds the chain against checkpoints supplied by peers as well as stored ones', async () => {
    store.entries = chain(6);
    const forged = signCheckpoint(NODE, 4, 'a'.repeat(64), 't', signer);
    const r = await verifyStoredChain(db, { nodeId: NODE, keys, extraCheckpoints: [forged] });
    expect(r).toMatchObject({ ok: false, kind: 'fork', seq: 4 });
  });

  it('with from > 1 starts reading at the anchor entry from - 1 and counts from `from`', async () => {
    store.entries = chain(12);
    const r = await verifyStoredChain(db, { nodeId: NODE, keys, from: 5 });
    expect(r).toEqual({ ok: true, count: 8, head: { seq: 12, hash: store.entries[11]!.hash }, checkpointsChecked: 0 });
    expect(store.reads).toEqual(['checkpoints after 0 limit 10000', 'entries from 4 limit 5000']);
  });

  it('from = 1 starts at seq 1 with no anchor', async () => {
    store.entries = chain(3);
    expect(await verifyStoredChain(db, { nodeId: NODE, keys, from: 1 })).toMatchObject({ ok: true, count: 3 });
    expect(store.reads).toContain('entries from 1 limit 5000');
  });

  it('pages through more than 5000 entries, each page starting after the last seq read', async () => {
    store.entries = chain(5003);
    const r = await verifyStoredChain(db, { nodeId: NODE, keys });
    expect(r).toMatchObject({ ok: true, count: 5003 });
    expect(store.reads).toEqual(['checkpoints after 0 limit 10000', 'entries from 1 limit 5000', 'entries from 5001 limit 5000']);
  });

  it('stops reading at the first failure (one page read ahead at most)', async () => {
    store.entries = chain(5003);
    store.entries[10] = { ...store.entries[10]!, canonical: '{"tampered":true}' };
    const r = await verifyStoredChain(db, { nodeId: NODE, keys });
    expect(r).toMatchObject({ ok: false, kind: 'hash_mismatch', seq: 11 });
    expect(store.reads.filter((x) => x.startsWith('entries'))).toEqual(['entries from 1 limit 5000', 'entries from 5001 limit 5000']);
  });

  it('a page read ahead that fails is not reported when an earlier entry already failed', async () => {
    store.entries = chain(5003);
    store.entries[10] = { ...store.entries[10]!, canonical: '{"tampered":true}' };
    store.failFrom = 5001;
    await expect(verifyStoredChain(db, { nodeId: NODE, keys })).resolves.toMatchObject({ ok: false, kind: 'hash_mismatch', seq: 11 });
  });

  it('a failed read of the next page fails the verification with that error', async () => {
    store.entries = chain(5003);
    store.failFrom = 5001;
    await expect(verifyStoredChain(db, { nodeId: NODE, keys })).rejects.toThrow('connection lost reading from 5001');
  });

  it('pages through more than 10000 stored checkpoints, each page after the last seq listed', async () => {
    store.checkpoints = Array.from({ length: 10_001 }, (_, i) => malformed(i + 1));
    const r = await verifyStoredChain(db, { nodeId: NODE, keys });
    // Every checkpoint was loaded: the first one reported is the lowest.
    expect(r).toMatchObject({ ok: false, kind: 'bad_checkpoint', seq: 1 });
    expect(store.reads.slice(0, 2)).toEqual(['checkpoints after 0 limit 10000', 'checkpoints after 10000 limit 10000']);
  });
});
