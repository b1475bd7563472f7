import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logRecorder } from '../../src/audit/events.js';
import { createLogger } from '../../src/logger.js';
import { addPeer, setPeerState, updatePeer } from '../../src/federation/peer-admin.js';
import { PeerDirectory, activePeersNow, peerStates, type PeerChange } from '../../src/federation/peer-directory.js';
import { seedPeers } from '../../src/store/peers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/env.js';

// The live peer list of a process against a real database: a change made by another
// connection (as the CLI makes it) reaches it by NOTIFY well before the 2 s poll, and
// its change events are what the schedulers act on.
let t: TestDatabase;
let dir: PeerDirectory;
const changes: PeerChange[] = [];
const logger = createLogger('silent');
const deps = () => ({ db: t.database.db, audit: logRecorder(logger), nodeId: 'self' });

beforeAll(async () => {
  t = await createTestDatabase();
  await seedPeers(t.database.db, [{ id: 'seeded', url: 'http://h:1', flavour: 'memfed' }]);
  // A poll interval far beyond the test: only the NOTIFY can deliver the changes in time.
  dir = await PeerDirectory.open(t.database, logger, { pollMs: 600_000 });
  dir.onChange((c) => changes.push(c));
});
afterAll(async () => {
  await dir?.close();
  await t?.drop();
});

describe('peer directory', () => {
  it('starts from the table and follows changes made elsewhere at once, in one live map', async () => {
    const live = dir.active;
    expect([...live.keys()]).toEqual(['seeded']);
    await addPeer(deps(), { id: 'added', url: 'http://h:2', flavour: 'ai-memory-0.7' }, 'test');
    await waitFor(async () => live.has('added'), { what: 'the added peer', timeoutMs: 5_000 });
    expect(live.get('added')).toEqual({ id: 'added', url: 'http://h:2', flavour: 'ai-memory-0.7' });
    expect(changes.at(-1)).toEqual({ activated: [{ id: 'added', url: 'http://h:2', flavour: 'ai-memory-0.7' }], deactivated: [], updated: [] });

    await updatePeer(deps(), 'added', { url: 'http://h:22/' }, 'test');
    await waitFor(async () => live.get('added')?.url === 'http://h:22', { what: 'the new URL', timeoutMs: 5_000 });
    expect(changes.at(-1)).toEqual({ activated: [], deactivated: [], updated: [{ id: 'added', url: 'http://h:22', flavour: 'ai-memory-0.7' }] });

    await setPeerState(deps(), 'seeded', 'paused', 'test');
    await waitFor(async () => !live.has('seeded'), { what: 'the pause', timeoutMs: 5_000 });
    expect(changes.at(-1)).toEqual({ activated: [], deactivated: ['seeded'], updated: [] });
    expect(dir.get('seeded')?.state).toBe('paused');
    expect(dir.knownCount()).toBe(2);

    await setPeerState(deps(), 'added', 'removed', 'test');
    await waitFor(async () => dir.isRemoved('added'), { what: 'the removal', timeoutMs: 5_000 });
    expect(dir.knownCount()).toBe(1);
    expect(dir.active).toBe(live);
  });

  it('answers which peers are paused or removed straight from the table, and the active ones for a CLI', async () => {
    expect(await peerStates(t.database.db)).toEqual({ active: [], paused: ['seeded'], removed: ['added'] });
    // A FED_PEERS entry the node has not seeded yet counts as active; a row wins over FED_PEERS.
    const now = await activePeersNow(t.database.db, [{ id: 'seeded', url: 'http://h:1', flavour: 'memfed' }, { id: 'fresh', url: 'http://h:3', flavour: 'memfed' }]);
    expect([...now.keys()]).toEqual(['fresh']);
  });

  it('two adds of one new id at once: one is added, the other refused PEER_EXISTS (never a database error)', async () => {
    const results = await Promise.allSettled([0, 1, 2].map((i) => addPeer(deps(), { id: 'racing', url: `http://h:${10 + i}` }, 'test')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) expect(r.reason).toMatchObject({ status: 409, code: 'PEER_EXISTS' });
    await setPeerState(deps(), 'racing', 'removed', 'test');
  });

  it('seeding inserts only missing rows: a paused FED_PEERS peer stays paused', async () => {
    expect(await seedPeers(t.database.db, [{ id: 'seeded', url: 'http://other:9', flavour: 'memfed' }])).toEqual([]);
    await dir.refresh();
    expect(dir.get('seeded')).toMatchObject({ state: 'paused', url: 'http://h:1' });
  });
});
