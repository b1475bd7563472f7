import { afterEach, describe, expect, it } from 'vitest';
import { ensureOwnKey } from '../../src/federation/keys.js';
import { pushToPeer, type PusherDeps } from '../../src/federation/pusher.js';
import { validateMemory } from '../../src/memory/model.js';
import { getCursor } from '../../src/store/cursors.js';
import { applyReplicated } from '../../src/store/replica.js';
import { freePort, waitFor } from '../helpers/env.js';
import { api, newKeyDir, startTestNode, type TestNode } from '../helpers/node.js';
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

describe('a node its writer does not push to, without relay', () => {
  let nodes: TestNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.destroy()));
    nodes = [];
  });

  /** Rows `n` took in by `via`, applied or no-op (a relayed copy of a row it holds is a no-op). */
  const receivedVia = async (n: TestNode, via: string, status: 'applied' | 'noop' | 'any' = 'any') => {
    const text = await (await fetch(`${n.url}/metrics`)).text();
    const lines = text.split('\n').filter((l) => l.startsWith('memfed_applied_rows_total{') && l.includes(`via="${via}"`) && (status === 'any' ? !l.includes('status="skipped"') : l.includes(`status="${status}"`)));
    return lines.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  };

  it('gets the row by its catch-up pull of the node that received it, never in a push', async () => {
    // A chain a - b - c: c is no peer of a, so only b can hand it a's row.
    const keyDir = newKeyDir();
    const ids = ['chain-a', 'chain-b', 'chain-c'];
    for (const id of ids) await ensureOwnKey(keyDir, id);
    const ports = await Promise.all(ids.map(() => freePort()));
    const peer = (i: number) => ({ id: ids[i]!, url: `http://127.0.0.1:${ports[i]}` });
    const env = { PUSH_RELAY: 'false', CATCHUP_INTERVAL_MS: '500' };
    for (const [i, peers] of [[peer(1)], [peer(0), peer(2)], [peer(1)]].entries()) nodes.push(await startTestNode({ id: ids[i], port: ports[i], keyDir, peers, env }));
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    const r = await api(a.url, 'POST', '/api/v1/memories', { title: 'from a', content: 'down the chain' });
    expect(r.status).toBe(201);
    const id = r.json.id as string;
    const holds = (n: TestNode) => api(n.url, 'GET', `/api/v1/memories/${id}`).then((res) => res.status === 200);
    await waitFor(() => holds(b), { what: `${id} on b` });
    await waitFor(() => holds(c), { timeoutMs: 30_000, what: `${id} on c` });
    // b's cursor for c has passed the row: a push from b that was to carry it has been sent.
    await waitFor(
      async () => (await b.db.database.sql`SELECT 1 FROM peer_cursors p, change_feed f WHERE p.peer_id = ${c.id} AND f.memory_id = ${id} AND (p.txid, p.seq) >= (f.txid, f.seq)`).length > 0,
      { timeoutMs: 30_000, what: `b's cursor for c past ${id}` },
    );
    expect(await receivedVia(c, 'catchup', 'applied')).toBeGreaterThanOrEqual(1);
    expect(await receivedVia(c, 'push')).toBe(0);
  });
});
