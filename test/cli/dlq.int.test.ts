import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { oldestPendingOutbox, readAuditPage } from '../../src/store/audit.js';
import { deadLetter } from '../../src/store/dlq.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REDIS_URL, waitFor } from '../helpers/env.js';
import { newKeyDir, startTestNode } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { spawnMemfed } from '../helpers/process.js';
import { dropPrefix } from '../helpers/redis.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';

/*
 * `memfed dlq ...` as an operator runs it: the real CLI process against a test database,
 * replaying to an upstream-style receiver. One scenario, in order (each step depends on
 * the one before, as an operator's session does), then a worker of the same node appends
 * what the CLI recorded to the audit chain.
 */
let db: TestDatabase;
let peer: UpstreamReceiver;
let env: Record<string, string>;

async function memfed(...args: string[]): Promise<{ code: number | string; out: string; err: string }> {
  const p = spawnMemfed(['dlq', ...args], env);
  const code = await p.exited;
  return { code, out: p.stdout(), err: p.output() };
}
const statuses = async () => Object.fromEntries((await db.database.sql`SELECT memory_id, status FROM federation_push_dlq ORDER BY id`).map((r) => [r.memory_id, r.status]));

beforeAll(async () => {
  db = await createTestDatabase();
  const keyDir = newKeyDir();
  await ensureOwnKey(keyDir, 'cli-node');
  peer = await new UpstreamReceiver('peer-c', keyDir).start();
  env = { NODE_ID: 'cli-node', DATABASE_URL: db.url, REDIS_URL, FED_KEY_DIR: keyDir, FED_PEERS: `peer-c=${peer.url}`, DLQ_MAX_REPLAY_ATTEMPTS: '2', LOG_LEVEL: 'warn' };
  await deadLetter(db.database.db, ['good-1', 'good-2', 'poison-1'].map((id) => ({ peerId: 'peer-c', memoryId: id, op: 'upsert' as const, payload: wireMemory({ id }), failureClass: 'transient', error: 'peer was down' })));
  await deadLetter(db.database.db, [{ peerId: 'peer-gone', memoryId: 'orphan-1', op: 'upsert', payload: wireMemory({ id: 'orphan-1' }), failureClass: 'permanent', error: 'HTTP 400' }]);
});
afterAll(async () => {
  await peer?.stop();
  await db?.drop();
});

describe('memfed dlq (the real CLI)', () => {
  it('lists, counts, replays, quarantines, requeues and purges, and audits each operator action (outbox, then chain)', async () => {
    const list = await memfed('list');
    expect(list.code).toBe(0);
    const lines = list.out.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.find((l) => l.includes('poison-1'))).toMatch(/^\d+\tpending\tpeer-c\tpoison-1\tattempts=0\ttransient\tpeer was down$/);

    const onlyGone = await memfed('list', '--peer', 'peer-gone', '--json');
    expect(JSON.parse(onlyGone.out).map((r: { memoryId: string }) => r.memoryId)).toEqual(['orphan-1']);

    const stats = await memfed('stats', '--json');
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.out).totals).toEqual({ pending: 4, quarantined: 0, replayed: 0, purged: 0 });

    // replay: the good rows are delivered; the poison row burns its two attempts and is quarantined
    peer.refuse.add('poison-1');
    const replay = await memfed('replay', '--peer', 'peer-c');
    expect(replay.code).toBe(1);
    expect(replay.out).toContain('replayed 2, failed 2');
    expect(peer.received.has('good-1') && peer.received.has('good-2')).toBe(true);
    expect(await statuses()).toEqual({ 'good-1': 'replayed', 'good-2': 'replayed', 'poison-1': 'quarantined', 'orphan-1': 'pending' });
    const quarantined = await memfed('list', '--status', 'quarantined', '--json');
    const [q] = JSON.parse(quarantined.out) as Array<{ id: number; memoryId: string; attempts: number }>;
    expect(q).toMatchObject({ memoryId: 'poison-1', attempts: 2 });
    const text = await memfed('stats');
    expect(text.out).toContain('pending 1, quarantined 1, replayed 2, purged 0');
    expect(text.out).toMatch(/peer-c: pending 0, quarantined 1, oldest pending -/);

    const noSelector = await memfed('requeue');
    expect(noSelector.code).toBe(2);
    expect(noSelector.err).toContain('memfed: dlq requeue: needs --all, --peer or --id');
    peer.refuse.delete('poison-1');
    const requeue = await memfed('requeue', '--id', String(q!.id));
    expect(requeue.code).toBe(0);
    expect(requeue.out).toContain('requeued 1, superseded 0');
    expect((await memfed('replay')).out).toContain('replayed 1, failed 0');
    expect(peer.deliveries.get('poison-1')).toBe(1);

    // purge: a dry run until --yes
    const dry = await memfed('purge', '--peer', 'peer-gone');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('would purge 1 row(s); run again with --yes to purge');
    expect((await statuses())['orphan-1']).toBe('pending');
    const real = await memfed('purge', '--peer', 'peer-gone', '--yes');
    expect(real.out).toContain('purged 1');
    expect(await statuses()).toEqual({ 'good-1': 'replayed', 'good-2': 'replayed', 'poison-1': 'replayed', 'orphan-1': 'purged' });

    // Audit: every operator action that changed something, and the quarantine, are in the
    // audit outbox (the CLI has no queue; the audit worker appends them to the chain).
    const events = (await oldestPendingOutbox(db.database.db, 1000)).map((e) => e.event);
    const operator = events.filter((e) => e.kind === 'dlq.operator');
    expect(operator.map((e) => e.details.action)).toEqual(['replay', 'requeue', 'replay', 'purge']);
    expect(operator.every((e) => e.actor === 'cli')).toBe(true);
    expect(operator[0]!.details).toMatchObject({ peer: 'peer-c', replayed: 2, failed: 2 });
    expect(operator[1]!.details).toMatchObject({ selector: { ids: [q!.id] }, requeued: 1, superseded: 0 });
    expect(operator[3]!.details).toMatchObject({ selector: { peerId: 'peer-gone' }, matched: 1, purged: 1 });
    const quarantines = events.filter((e) => e.kind === 'dlq.quarantined');
    expect(quarantines).toHaveLength(1);
    expect(quarantines[0]).toMatchObject({ subject: 'poison-1', details: { peer: 'peer-c', attempts: 2 } });

    // A worker of this node appends the outbox to its signed chain, in the order recorded.
    const worker = await startTestNode({ id: 'cli-node', role: 'worker', keyDir: env.FED_KEY_DIR!, db });
    try {
      const chained = await waitFor(async () => {
        const kinds = (await readAuditPage(db.database.db, 1, 1000)).map((e) => JSON.parse(e.canonical) as { kind: string; details: Record<string, unknown> });
        const dlq = kinds.filter((k) => k.kind.startsWith('dlq.'));
        return dlq.length >= 5 ? dlq : undefined;
      }, { what: 'the CLI\'s events in the audit chain' });
      expect(chained.map((e) => (e.kind === 'dlq.operator' ? e.details.action : e.kind))).toEqual(['dlq.quarantined', 'replay', 'requeue', 'replay', 'purge']);
      expect(await oldestPendingOutbox(db.database.db, 1000)).toEqual([]);
    } finally {
      await worker.stop();
      await dropPrefix(worker.prefix);
    }
  }, 120_000);
});
