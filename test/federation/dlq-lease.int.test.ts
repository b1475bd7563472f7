import { afterAll, describe, expect, it } from 'vitest';
import { deadLetter, leaseReplayable, markReplayed } from '../../src/store/dlq.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

describe('DLQ lease race', () => {
  let n: TestNode;
  afterAll(async () => {
    await n?.destroy();
  });

  it('a newer refusal arriving under a replayer\'s lease is not marked replayed by it', async () => {
    n = await startTestNode({ id: 'dlq-race' });
    const db = n.db.database.db;
    await deadLetter(db, [{ peerId: 'p', memoryId: 'm1', op: 'upsert', payload: { v: 1 }, failureClass: 'skipped', error: 'refused S1' }]);
    const [row] = await leaseReplayable(db, ['p'], 10, 'replayer-1', 60_000);
    expect(row).toBeDefined();
    await deadLetter(db, [{ peerId: 'p', memoryId: 'm1', op: 'upsert', payload: { v: 2 }, failureClass: 'skipped', error: 'refused S2' }]);
    expect(await markReplayed(db, [row!.id], 'replayer-1')).toBe(0);
    const [after] = await n.db.database.sql`SELECT status, payload, last_error FROM federation_push_dlq WHERE id = ${row!.id}`;
    expect(after).toMatchObject({ status: 'pending', payload: { v: 2 }, last_error: 'refused S2' });
  });
});
