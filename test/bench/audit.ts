import { randomBytes, randomUUID, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { appendEntries, auditKeyRing, auditSigner, entrySigningBytes, type AuditEntry, type AuditSigner } from '../../src/audit/chain.js';
import { verifyStoredChain } from '../../src/audit/verify.js';
import { publicKeyObject } from '../../src/federation/signing.js';
import { appendEvents } from '../../src/audit/append.js';
import type { PendingAuditEvent } from '../../src/store/audit.js';
import type { BenchContext } from './context.js';
import { interleavedMedians, now, opsPerSecSync } from './stats.js';

const NODE = 'bench-audit';
const BATCH = 500;

const events = (n: number): PendingAuditEvent[] =>
  Array.from({ length: n }, (_, i) => ({
    eventId: randomUUID(),
    event: { kind: 'dlq.quarantined', at: new Date().toISOString(), actor: 'bench', subject: `memory-${i}`, details: { peer: 'bench-peer', dlq_id: i, attempts: 100, failure_class: 'permanent', last_error: 'HTTP 422' } },
  }));

/** Pure chain building (canonical JSON, two SHA-256, one Ed25519 signature per entry). */
function buildChain(all: PendingAuditEvent[], signer: AuditSigner): number {
  const t = now();
  let head: { seq: number; hash: string } | null = null;
  for (let i = 0; i < all.length; i += BATCH) {
    const entries: AuditEntry[] = appendEntries(head, NODE, all.slice(i, i + BATCH).map((e) => e.event), signer);
    head = { seq: entries.at(-1)!.seq, hash: entries.at(-1)!.hash };
  }
  return (all.length * 1000) / (now() - t);
}

/**
 * Section 6: the audit chain. appendEntries (pure) and appendEvents (chain +
 * Postgres under the advisory lock) in batches, then verifyStoredChain over them,
 * against raw node:crypto Ed25519 sign and verify on the same 59-byte message.
 */
export async function auditSection(ctx: BenchContext): Promise<void> {
  const { report, infra } = ctx;
  const n = ctx.size(20_000, 5_000);
  const priv = randomBytes(32);
  const signer = auditSigner(priv);
  const pub = await ed.getPublicKeyAsync(priv);
  const keys = auditKeyRing([pub]);
  const pubKey = publicKeyObject(pub);
  const msg = entrySigningBytes('ab'.repeat(32));
  const sig = nodeSign(null, msg, signer.key);

  const reps = 3;
  const { database } = await infra.migratedDatabase(4);
  // The chain grows by `perRound` events in each of reps + 1 rounds (the first is warm-up): n in all.
  const perRound = Math.ceil(n / (reps + 1));
  let chainLength = 0;
  const append = async () => {
    const all = events(perRound);
    const t = now();
    for (let i = 0; i < all.length; i += BATCH) await appendEvents({ db: database.db, nodeId: NODE, signer, checkpointEvery: 1000 }, all.slice(i, i + BATCH));
    chainLength += all.length;
    return (all.length * 1000) / (now() - t);
  };
  let checkpoints = 0;
  const verify = async () => {
    const t = now();
    const result = await verifyStoredChain(database.db, { nodeId: NODE, keys });
    if (!result.ok || result.count !== chainLength) throw new Error(`verifyStoredChain: ${JSON.stringify(result)}`);
    checkpoints = result.checkpointsChecked;
    return (result.count * 1000) / (now() - t);
  };
  const rawSign = () => opsPerSecSync(() => nodeSign(null, msg, signer.key), 300);
  const rawVerify = () => opsPerSecSync(() => nodeVerify(null, msg, pubKey, sig), 300);
  const rawVerifyPool = () => verifyOnPool(msg, pubKey, sig, 4000);

  // Each memfed figure is interleaved with its raw baselines, so machine load hits both alike.
  const building = await interleavedMedians(reps, { pure: () => buildChain(events(ctx.size(5000, 2000)), signer), rawSign });
  report.add({ metric: 'appendEntries (pure)', value: building.pure, unit: 'entries/s', baselineLabel: 'raw node:crypto sign', baseline: building.rawSign });
  const appending = await interleavedMedians(reps, { append, rawSign });
  report.add({ metric: `appendEvents (batches of ${BATCH})`, value: appending.append, unit: 'entries/s', baselineLabel: 'raw node:crypto sign', baseline: appending.rawSign });
  const verifying = await interleavedMedians(reps, { verify, rawVerify, rawVerifyPool });
  report.add({ metric: `verifyStoredChain ${chainLength} entries`, value: verifying.verify, unit: 'entries/s', baselineLabel: 'raw node:crypto verify (sync)', baseline: verifying.rawVerify });
  report.add({ metric: `verifyStoredChain ${chainLength} entries`, value: verifying.verify, unit: 'entries/s', baselineLabel: 'raw verify on libuv pool', baseline: verifying.rawVerifyPool });
  report.note(`chain of ${chainLength} entries appended in ${reps + 1} rounds of ${perRound}; verified ok ${reps + 1} times (${checkpoints} checkpoints checked); medians of ${reps}`);
}

/** Verify rate with `count` callback-form verifies in flight at once (the libuv thread pool). */
async function verifyOnPool(msg: Buffer, key: ReturnType<typeof publicKeyObject>, sig: Buffer, count: number): Promise<number> {
  const t = now();
  await Promise.all(
    Array.from({ length: count }, () => new Promise<void>((resolve, reject) => nodeVerify(null, msg, key, sig, (err, ok) => (err || !ok ? reject(err ?? new Error('verify failed')) : resolve())))),
  );
  return (count * 1000) / (now() - t);
}
