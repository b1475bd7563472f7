import { afterEach, describe, expect, it } from 'vitest';
import { pushToPeer, type PusherDeps } from '../../src/federation/pusher.js';
import { validateMemory } from '../../src/memory/model.js';
import { getCursor } from '../../src/store/cursors.js';
import { applyReplicated } from '../../src/store/replica.js';
import { newKeyDir } from '../helpers/node.js';
import { wireMemory } from '../helpers/peer.js';
import { UpstreamReceiver } from '../helpers/upstream-peer.js';
import { workerContext } from '../helpers/worker-context.js';

/*
 * PUSH_RELAY: by default a row applied from one peer flows on to the others in pushes;
 * with it off (a full mesh, where every writer pushes to every node) only this node's own
 * writes are pushed, and the cursor still moves past the relayed rows.
 */
const PEER_ID = 'relay-receiver';

describe('a push run and rows applied from other peers', () => {
  const open: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of open.splice(0).reverse()) await close();
  });

  async function pushAll(relay: boolean | undefined) {
    const keyDir = newKeyDir();
    const peer = await new UpstreamReceiver(PEER_ID, keyDir).start();
    const t = await workerContext({ nodeId: 'relay-node', keyDir, peers: [{ id: PEER_ID, url: peer.url }] });
    open.push(async () => {
      await t.close();
      await peer.stop();
    });
    const db = t.ctx.database.db;
    const rows = (prefix: string) => Array.from({ length: 3 }, (_, i) => validateMemory(wireMemory({ id: `${prefix}-${i}` })));
    await applyReplicated(db, { memories: rows('local'), tombstones: [], originPeer: null });
    await applyReplicated(db, { memories: rows('from-other'), tombstones: [], originPeer: 'other-peer' });
    const [head] = await t.ctx.database.sql`SELECT txid::text AS txid, seq::text AS seq FROM change_feed ORDER BY txid DESC, seq DESC LIMIT 1`;
    const deps: PusherDeps = { db, client: t.ctx.client, selfId: 'relay-node', batchMax: 100, batchMaxBytes: t.ctx.config.push.batchMaxBytes, ...(relay === undefined ? {} : { relay }), logger: t.ctx.logger, metrics: t.ctx.metrics, publishAck: async () => {} };
    // The commits are read once below the feed horizon (another test's open transaction may hold it back a moment).
    for (let i = 0; i < 200; i++) {
      await pushToPeer(deps, t.ctx.peers.get(PEER_ID)!, 60_000);
      const c = await getCursor(db, PEER_ID);
      if (c.txid === head!.txid && c.seq === head!.seq) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const cursor = await getCursor(db, PEER_ID);
    return { received: [...peer.received.keys()].sort(), cursorAtHead: cursor.txid === head!.txid && cursor.seq === head!.seq };
  }

  it('sends rows applied from another peer on by default', async () => {
    const r = await pushAll(undefined);
    expect(r.received).toEqual(['from-other-0', 'from-other-1', 'from-other-2', 'local-0', 'local-1', 'local-2']);
    expect(r.cursorAtHead).toBe(true);
  });

  it('without relay sends only local writes, and its cursor passes the rest', async () => {
    const r = await pushAll(false);
    expect(r.received).toEqual(['local-0', 'local-1', 'local-2']);
    expect(r.cursorAtHead).toBe(true);
  });
});
