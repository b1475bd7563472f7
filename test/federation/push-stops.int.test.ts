import { afterEach, describe, expect, it } from 'vitest';
import { pushToPeer, type PusherDeps } from '../../src/federation/pusher.js';
import { validateMemory } from '../../src/memory/model.js';
import { applyReplicated } from '../../src/store/replica.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';
import { workerContext } from '../helpers/worker-context.js';

/*
 * A push run asks before every batch whether the peer is still one to send to: paused or
 * removed at runtime, the run stops at once, and it never re-creates the cursor of a peer
 * that is gone (an operator's purge stays a purge).
 */
const PEER_ID = 'peer-stop';
const BATCH = 10;

describe('a push run for a peer paused or removed while it runs', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  async function setup() {
    const keyDir = newKeyDir();
    const peer = await new UpstreamReceiver(PEER_ID, keyDir).start();
    const t = await workerContext({ nodeId: 'stop-node', keyDir, peers: [{ id: PEER_ID, url: peer.url }], env: { PUSH_BATCH_MAX: String(BATCH) } });
    open.push(async () => {
      await t.close();
      await peer.stop();
    });
    const db = t.ctx.database.db;
    const rows = Array.from({ length: 5 * BATCH }, (_, i) => validateMemory(wireMemory({ id: `stop-${String(i).padStart(3, '0')}` })));
    await applyReplicated(db, { memories: rows, tombstones: [], originPeer: null });
    let active = true;
    const deps: PusherDeps = { db, client: t.ctx.client, selfId: 'stop-node', batchMax: BATCH, batchMaxBytes: t.ctx.config.push.batchMaxBytes, logger: t.ctx.logger, metrics: t.ctx.metrics, publishAck: async () => {}, stillActive: () => active };
    const cursorRows = async () => (await t.ctx.database.sql`SELECT count(*)::int AS n FROM peer_cursors WHERE peer_id = ${PEER_ID}`)[0]!.n as number;
    return { t, peer, deps, peerConfig: t.ctx.peers.get(PEER_ID)!, setActive: (v: boolean) => (active = v), cursorRows };
  }

  it('stops before the next batch once the peer is no longer active', async () => {
    const s = await setup();
    const seen = s.peer.requests;
    // Deactivated after the first answered batch: the other four are never sent.
    const publish = s.deps.publishAck;
    s.deps.publishAck = async (...args) => {
      s.setActive(false);
      return publish(...args);
    };
    // The commit is read once it is below the feed horizon (another test's open transaction may hold it back a moment).
    let r = await pushToPeer(s.deps, s.peerConfig, 60_000);
    for (let i = 0; r.batches === 0 && i < 200; i++) {
      await new Promise((res) => setTimeout(res, 50));
      r = await pushToPeer(s.deps, s.peerConfig, 60_000);
    }
    expect(r.batches).toBe(1);
    expect(s.peer.requests - seen).toBe(1);
  });

  it('never re-creates the cursor of a peer that is gone', async () => {
    const s = await setup();
    s.setActive(false);
    await pushToPeer(s.deps, s.peerConfig, 60_000);
    expect(await s.cursorRows()).toBe(0);
    expect(s.peer.requests).toBe(0);
  });
});
