import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableRecorder } from '../../src/audit/events.js';
import { loadConfig } from '../../src/config.js';
import { PeerClient } from '../../src/federation/client.js';
import { replayDepsFrom, replayRound, type ReplayDeps } from '../../src/federation/dlq-replay.js';
import { KeyRing, ensureOwnKey } from '../../src/federation/keys.js';
import { createLogger } from '../../src/logger.js';
import { validateMemory } from '../../src/memory/model.js';
import { createMetrics } from '../../src/metrics.js';
import { insertOutbox, oldestPendingOutbox } from '../../src/store/audit.js';
import { deadLetter, leaseReplayable, markFailed, markReplayed, renewLease, requeueQuarantined } from '../../src/store/dlq.js';
import { applyReplicated } from '../../src/store/replica.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * Replay rounds run in this process (no node, no queue) against a test database and an
 * upstream-style receiver, with the same replay deps and quarantine handling the DLQ
 * worker and the CLI use (replayDepsFrom). Every test uses its own memory ids.
 */
const PEER = 'peer-r';
const T0 = '2026-02-01T00:00:00.000000+00:00';
const T1 = '2026-02-02T00:00:00.000000+00:00';
const T2 = '2026-02-03T00:00:00.000000+00:00';

let db: TestDatabase;
let peer: UpstreamReceiver;
let deps: ReplayDeps;
let audit: ReturnType<typeof tableRecorder>;

const row = async (memoryId: string) => (await db.database.sql`SELECT id::int AS id, status, attempts, failure_class, last_error, lease_owner FROM federation_push_dlq WHERE memory_id = ${memoryId} ORDER BY id`) as unknown as Array<{ id: number; status: string; attempts: number; failure_class: string; last_error: string; lease_owner: string | null }>;
const letter = (id: string, payload: Record<string, unknown>, op: 'upsert' | 'delete' = 'upsert') => deadLetter(db.database.db, [{ peerId: PEER, memoryId: id, op, payload, failureClass: 'skipped', error: 'refused then' }]);
/** Runs rounds until the given memory's latest DLQ row is no longer pending (a positive signal, bounded). */
async function replayUntilSettled(memoryId: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await replayRound(deps);
    if ((await row(memoryId)).at(-1)!.status !== 'pending') return;
  }
  throw new Error(`DLQ row for ${memoryId} never settled`);
}
const auditEvents = async () => {
  await audit.flush();
  return (await oldestPendingOutbox(db.database.db, 10_000)).map((e) => e.event);
};

beforeAll(async () => {
  db = await createTestDatabase();
  const keyDir = newKeyDir();
  await ensureOwnKey(keyDir, 'replayer');
  peer = await new UpstreamReceiver(PEER, keyDir).start();
  const config = loadConfig({ NODE_ID: 'replayer', DATABASE_URL: db.url, REDIS_URL, FED_KEY_DIR: keyDir, FED_PEERS: `${PEER}=${peer.url}`, DLQ_MAX_REPLAY_ATTEMPTS: '2', PUSH_BATCH_MAX: '50' });
  const keys = await KeyRing.load(keyDir, 'replayer');
  const logger = createLogger('silent');
  audit = tableRecorder((eventId, event) => insertOutbox(db.database.db, [{ eventId, event, reason: 'test' }]).then(() => undefined), logger);
  deps = replayDepsFrom(config, {
    db: db.database.db,
    client: new PeerClient({ selfId: 'replayer', signingKey: keys.signingKey, apiKey: '', timeoutMs: 5000 }),
    logger,
    metrics: createMetrics({ nodeId: 'replayer', role: 'test', defaultMetrics: false }),
    audit,
  });
});
afterAll(async () => {
  await peer?.stop();
  await db?.drop();
});

describe('DLQ replay sends the current state', () => {
  it('sends a memory changed since it was dead-lettered as it is now, not the refused payload', async () => {
    const v1 = wireMemory({ id: 'cur-1', content: 'as refused', updated_at: T0 });
    await applyReplicated(db.database.db, { memories: [validateMemory({ ...v1, content: 'as it is now', updated_at: T1 })], tombstones: [], originPeer: null });
    await letter('cur-1', v1);
    await replayUntilSettled('cur-1');
    expect(peer.received.get('cur-1')).toMatchObject({ content: 'as it is now', updated_at: T1 });
    expect(peer.deliveries.get('cur-1')).toBe(1);
    expect((await row('cur-1'))[0]).toMatchObject({ status: 'replayed', attempts: 0 });
  });

  it('sends a tombstone for a memory deleted since it was dead-lettered', async () => {
    const v1 = wireMemory({ id: 'gone-1', updated_at: T0 });
    await applyReplicated(db.database.db, { memories: [validateMemory(v1)], tombstones: [{ id: 'gone-1', deleted_at: T2 }], originPeer: null });
    await letter('gone-1', v1);
    await replayUntilSettled('gone-1');
    expect(peer.deleted.has('gone-1')).toBe(true);
    expect(peer.tombstones.get('gone-1')).toBe(T2);
    expect(peer.deliveries.has('gone-1')).toBe(false);
    expect((await row('gone-1'))[0]!.status).toBe('replayed');
  });

  it('sends the dead-lettered payload when nothing is stored under the id', async () => {
    await letter('unstored-1', wireMemory({ id: 'unstored-1', content: 'only in the DLQ' }));
    await letter('unstored-del', { id: 'unstored-del', deleted_at: T1 }, 'delete');
    await replayUntilSettled('unstored-1');
    await replayUntilSettled('unstored-del');
    expect(peer.received.get('unstored-1')).toMatchObject({ content: 'only in the DLQ' });
    expect(peer.tombstones.get('unstored-del')).toBe(T1);
  });
});

describe('DLQ quarantine and requeue', () => {
  it('quarantines a row at the attempt limit and records one dlq.quarantined audit event for it', async () => {
    peer.refuse.add('poison-q');
    try {
      await applyReplicated(db.database.db, { memories: [validateMemory(wireMemory({ id: 'poison-q' }))], tombstones: [], originPeer: null });
      await letter('poison-q', wireMemory({ id: 'poison-q' }));
      await replayUntilSettled('poison-q');
      const [r] = await row('poison-q');
      expect(r).toMatchObject({ status: 'quarantined', attempts: 2, failure_class: 'skipped', last_error: 'peer reported skipped' });
      const events = (await auditEvents()).filter((e) => e.kind === 'dlq.quarantined' && e.subject === 'poison-q');
      expect(events).toHaveLength(1);
      expect(events[0]!.details).toMatchObject({ peer: PEER, dlq_id: r!.id, attempts: 2, failure_class: 'skipped', last_error: 'peer reported skipped' });
      // a quarantined row is taken by no round
      const requests = peer.requests;
      const round = await replayRound(deps);
      expect(round.taken).toBe(0);
      expect(peer.requests).toBe(requests);
    } finally {
      peer.refuse.delete('poison-q');
    }
  });

  it('requeue marks a quarantined row superseded when a newer pending row carries its memory, and requeues the others', async () => {
    peer.refuse.add('sup-1');
    peer.refuse.add('req-1');
    await letter('sup-1', wireMemory({ id: 'sup-1', content: 'old' }));
    await letter('req-1', wireMemory({ id: 'req-1' }));
    await replayUntilSettled('sup-1');
    await replayUntilSettled('req-1');
    expect((await row('sup-1')).map((r) => r.status)).toEqual(['quarantined']);
    // The memory is refused again later: a new pending row beside the quarantined one.
    await letter('sup-1', wireMemory({ id: 'sup-1', content: 'newer' }));
    const [quarantined, pending] = await row('sup-1');
    expect([quarantined!.status, pending!.status]).toEqual(['quarantined', 'pending']);
    const ids = [quarantined!.id, (await row('req-1'))[0]!.id];
    expect(await requeueQuarantined(db.database.db, { ids })).toEqual({ requeued: 1, superseded: 1 });
    expect((await row('sup-1')).map((r) => r.status)).toEqual(['superseded', 'pending']);
    expect((await row('req-1'))[0]).toMatchObject({ status: 'pending', attempts: 0 });

    peer.refuse.clear();
    await replayUntilSettled('sup-1');
    await replayUntilSettled('req-1');
    // the superseded row is never sent again: the memory went once, from the pending row
    expect(peer.deliveries.get('sup-1')).toBe(1);
    expect(peer.received.get('sup-1')).toMatchObject({ content: 'newer' });
    expect((await row('sup-1')).map((r) => r.status)).toEqual(['superseded', 'replayed']);
    expect((await row('req-1'))[0]!.status).toBe('replayed');
  });
});

describe('DLQ leases', () => {
  it('a replayer that died holding a lease: its rows are skipped until the lease expires, then another replayer takes them', async () => {
    await letter('lease-1', wireMemory({ id: 'lease-1' }));
    const { id } = (await row('lease-1'))[0]!;
    const dead = 'replayer-that-died';
    const leased = await leaseReplayable(db.database.db, [PEER], 1000, dead, 60_000);
    expect(leased.map((r) => r.id)).toContain(id);
    // while the lease runs, a live replayer leaves the row alone
    await replayRound(deps);
    expect(peer.deliveries.has('lease-1')).toBe(false);
    expect((await row('lease-1'))[0]).toMatchObject({ status: 'pending', lease_owner: dead });
    // Its lease runs out (as if granted a lease length ago): expiry is the database clock's.
    await db.database.sql`UPDATE federation_push_dlq SET lease_until = now() + interval '200 milliseconds' WHERE id = ${id} AND lease_owner = ${dead}`;
    await waitFor(async () => (await db.database.sql`SELECT lease_until < now() AS expired FROM federation_push_dlq WHERE id = ${id}`)[0]!.expired, { what: 'the dead replayer\'s lease to expire' });
    await replayUntilSettled('lease-1');
    expect(peer.deliveries.get('lease-1')).toBe(1);
    // the dead replayer wakes up: nothing it does touches the row any more
    expect((await renewLease(db.database.db, [id], dead, 60_000)).size).toBe(0);
    expect(await markReplayed(db.database.db, [id], dead)).toBe(0);
    expect(await markFailed(db.database.db, [{ id, failureClass: 'skipped', error: 'late' }], dead, 2)).toEqual([]);
    expect((await row('lease-1'))[0]).toMatchObject({ status: 'replayed', attempts: 0, lease_owner: null });
  });
});
