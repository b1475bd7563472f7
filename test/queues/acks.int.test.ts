import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AckTracker, ackChannel, publishAck } from '../../queues/acks.js';
import type { Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { buildNewMemory } from '../../src/memory/input.js';
import { nowMicros } from '../../src/memory/time.js';
import { advanceCursor, getCursor } from '../../src/store/cursors.js';
import { deadLetter } from '../../src/store/dlq.js';
import { FEED_START, type FeedPosition } from '../../src/store/feed.js';
import { insertMemories } from '../../src/store/memories.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, uniqueSuffix } from '../helpers/env.js';
import { wireMemory } from '../helpers/peer.js';

// Quorum waiters against real Postgres cursors/DLQ and real Redis pub/sub. The rule under
// test: a peer whose cursor passed a write acks it only if it did not refuse it, however
// the tracker learned of the cursor (a message, a lost message, a database read).
let t: TestDatabase;
let pub: Redis;
const trackers: AckTracker[] = [];
const PEERS = ['peer-b', 'peer-c'];

beforeAll(async () => {
  t = await createTestDatabase();
  pub = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
});
afterEach(async () => {
  await Promise.all(trackers.splice(0).map((tr) => tr.close()));
});
afterAll(async () => {
  pub.disconnect();
  await t.drop();
});

async function tracker(prefix: string, active?: Map<string, unknown>): Promise<AckTracker> {
  const config = { queuePrefix: prefix, federation: { peers: PEERS.map((id) => ({ id })) } } as unknown as Config;
  const tr = new AckTracker(new Redis(REDIS_URL, { maxRetriesPerRequest: null }), config, t.database, createLogger('silent'), active);
  trackers.push(tr);
  await tr.start();
  return tr;
}

/** A committed write; returns its memory id and feed position. */
async function write(): Promise<{ id: string; at: FeedPosition }> {
  const m = buildNewMemory({ title: 'quorum write', content: 'c' }, { agentId: 'test', nowMicros: nowMicros() });
  const { position } = await insertMemories(t.database.db, [m]);
  return { id: m.id, at: position! };
}

async function refuse(peerId: string, memoryId: string): Promise<void> {
  await deadLetter(t.database.db, [{ peerId, memoryId, op: 'upsert', payload: wireMemory({ id: memoryId }), failureClass: 'permanent', error: 'HTTP 422' }]);
}

describe('quorum acks', () => {
  it('a cursor read from the database resolves no waiter on a row the peer refused', async () => {
    for (const p of PEERS) await getCursor(t.database.db, p);
    const acks = await tracker(`acks-db-${uniqueSuffix()}`);
    const first = await write();
    const second = await write();
    // The first waiter times out soon and re-reads every cursor from the database.
    const timedOut = acks.waitFor(first.at, 1, 300);
    const refusedWait = acks.waitFor(second.at, 1, 3_000);
    // peer-b refused the second row and its cursor moved past it; the ack message was lost.
    await refuse('peer-b', second.id);
    await advanceCursor(t.database.db, 'peer-b', second.at);
    const settled = await Promise.race([refusedWait.then((r) => ({ early: true, r })), timedOut.then(() => ({ early: false }))]);
    expect(settled.early).toBe(false);
    expect(await refusedWait).toEqual({ acks: 0, refused: 1 });
  });

  it('a message that does not continue from the last one is checked against the DLQ before it counts', async () => {
    const prefix = `acks-gap-${uniqueSuffix()}`;
    const acks = await tracker(prefix);
    const refusedRow = await write();
    const accepted = await write();
    const refusedWait = acks.waitFor(refusedRow.at, 1, 1_500);
    const acceptedWait = acks.waitFor(accepted.at, 1, 10_000);
    // peer-c refused the first row; the message saying so was lost, and only
    // the next one (from the first row to the second) arrives.
    await refuse('peer-c', refusedRow.id);
    await advanceCursor(t.database.db, 'peer-c', accepted.at);
    await publishAck(pub, prefix, 'peer-c', accepted.at, [], refusedRow.at);
    expect(await acceptedWait).toEqual({ acks: 1, refused: 0 });
    expect(await refusedWait).toEqual({ acks: 0, refused: 1 });
  });

  it('contiguous messages resolve at once: a carried refusal is no ack, the rest are', async () => {
    const prefix = `acks-msg-${uniqueSuffix()}`;
    for (const p of PEERS) await advanceCursor(t.database.db, p, (await write()).at);
    const acks = await tracker(prefix);
    const start = (await getCursor(t.database.db, 'peer-b')) as FeedPosition;
    const refusedRow = await write();
    const accepted = await write();
    const refusedWait = acks.waitFor(refusedRow.at, 2, 60_000);
    const acceptedWait = acks.waitFor(accepted.at, 2, 60_000);
    const started = Date.now();
    // peer-c's ack first: once peer-b's refusal arrives the refused write can no longer be
    // met and resolves with what it has then (in this order, deterministically c's ack).
    await publishAck(pub, prefix, 'peer-c', accepted.at, [], (await getCursor(t.database.db, 'peer-c')) as FeedPosition);
    await publishAck(pub, prefix, 'peer-b', accepted.at, [refusedRow.at], { txid: start.txid, seq: start.seq });
    // Both peers answered: the accepted write is met; the refused one can never reach W=3.
    expect(await acceptedWait).toEqual({ acks: 2, refused: 0 });
    expect(await refusedWait).toEqual({ acks: 1, refused: 1 });
    // Neither waited for its 60 s deadline.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('a paused peer counts as unavailable: its acks do not count, and a quorum only paused peers could meet is answered at once', async () => {
    const prefix = `acks-paused-${uniqueSuffix()}`;
    // The runtime peer list's live map: peer-b paused (absent), peer-c active.
    const active = new Map<string, unknown>([['peer-c', {}]]);
    const acks = await tracker(prefix, active);
    const w = await write();
    const fromB = acks.waitFor(w.at, 1, 800);
    await publishAck(pub, prefix, 'peer-b', w.at, [], FEED_START);
    expect(await fromB).toEqual({ acks: 0, refused: 0 });
    // W=3 (two peer acks) with one peer paused: no waiting for the deadline.
    const started = Date.now();
    expect(await acks.waitFor(w.at, 2, 60_000)).toEqual({ acks: 0, refused: 0 });
    expect(Date.now() - started).toBeLessThan(10_000);
    // Resumed (back in the map, updated in place): its next ack counts.
    active.set('peer-b', {});
    const next = await write();
    const resumed = acks.waitFor(next.at, 1, 10_000);
    await publishAck(pub, prefix, 'peer-b', next.at, [], w.at);
    expect(await resumed).toEqual({ acks: 1, refused: 0 });
  });

  it('ignores foreign and malformed messages on the channel', async () => {
    const prefix = `acks-junk-${uniqueSuffix()}`;
    const acks = await tracker(prefix);
    const w = await write();
    const waiting = acks.waitFor(w.at, 1, 800);
    await pub.publish(ackChannel(prefix), 'not json');
    await pub.publish(ackChannel(prefix), JSON.stringify({ peer: 'stranger', txid: w.at.txid, seq: w.at.seq, from: FEED_START }));
    await pub.publish(ackChannel(prefix), JSON.stringify(null));
    expect(await waiting).toEqual({ acks: 0, refused: 0 });
  });
});
