import { eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { peerCursors, peerWatermarks, peers } from '../db/schema.js';
import type { PeerFlavour, PeerSpec } from '../federation/peers.js';

export const PEER_STATES = ['active', 'paused', 'removed'] as const;
export type PeerState = (typeof PEER_STATES)[number];

/** A row of the `peers` table. */
export interface PeerRow extends PeerSpec {
  state: PeerState;
  /** Raw 32-byte Ed25519 public key, or null (a `<id>.pub` file in FED_KEY_DIR may enrol it). */
  publicKey: Buffer | null;
  source: 'fed_peers' | 'operator';
  createdAt: string;
  updatedAt: string;
}

/** Every process of the node listens here; a change is also seen by the next poll. */
export const PEERS_CHANNEL = 'memfed_peers';

const columns = {
  id: peers.id,
  url: peers.url,
  flavour: peers.flavour,
  publicKey: peers.publicKey,
  state: peers.state,
  source: peers.source,
  createdAt: peers.createdAt,
  updatedAt: peers.updatedAt,
};

type Raw = { [K in keyof typeof columns]: unknown };
const toRow = (r: Raw): PeerRow => ({
  id: r.id as string,
  url: r.url as string,
  flavour: r.flavour as PeerFlavour,
  publicKey: r.publicKey === null ? null : Buffer.from(r.publicKey as Uint8Array),
  state: r.state as PeerState,
  source: r.source as PeerRow['source'],
  createdAt: r.createdAt as string,
  updatedAt: r.updatedAt as string,
});

export async function listPeerRows(db: Db): Promise<PeerRow[]> {
  return (await db.select(columns).from(peers).orderBy(peers.id)).map(toRow);
}

export async function getPeerRow(db: Db | Tx, id: string): Promise<PeerRow | null> {
  const [r] = await db.select(columns).from(peers).where(eq(peers.id, id));
  return r ? toRow(r) : null;
}

// In the same transaction as the change: delivered to listeners at commit, never before.
const notify = (tx: Tx, id: string) => tx.execute(sql`SELECT pg_notify(${PEERS_CHANNEL}, ${id})`);

/**
 * `FED_PEERS` at start-up: a row only for a peer that has none. A peer paused, removed or
 * changed at runtime keeps that state across restarts with the same `FED_PEERS`.
 * Returns the ids inserted (several processes may seed at once; each row is inserted once).
 */
export async function seedPeers(db: Db, specs: PeerSpec[]): Promise<string[]> {
  if (specs.length === 0) return [];
  return db.transaction(async (tx) => {
    const r = await tx
      .insert(peers)
      // In id order: processes seeding at once lock the same rows in the same order (no deadlock).
      .values([...specs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((p) => ({ id: p.id, url: p.url, flavour: p.flavour, source: 'fed_peers' })))
      .onConflictDoNothing()
      .returning({ id: peers.id });
    for (const { id } of r) await notify(tx, id);
    return r.map((x) => x.id);
  });
}

/**
 * Runs `change` on the row locked (FOR UPDATE: two operators acting on one peer are
 * serialized) and notifies every process when it wrote. `change` gets null for no row.
 */
export async function changePeer<T>(db: Db, id: string, change: (tx: Tx, row: PeerRow | null) => Promise<{ wrote: boolean; result: T }>): Promise<T> {
  return db.transaction(async (tx) => {
    const [locked] = await tx.select(columns).from(peers).where(eq(peers.id, id)).for('update');
    const r = await change(tx, locked ? toRow(locked) : null);
    if (r.wrote) await notify(tx, id);
    return r.result;
  });
}

/** False when the row exists after all (another add of the same id committed first: no row to lock then). */
export async function insertPeerRow(tx: Tx, spec: PeerSpec, publicKey: Buffer | null): Promise<boolean> {
  const r = await tx.insert(peers).values({ id: spec.id, url: spec.url, flavour: spec.flavour, publicKey, state: 'active', source: 'operator' }).onConflictDoNothing().returning({ id: peers.id });
  return r.length > 0;
}

export async function updatePeerRow(tx: Tx, id: string, set: Partial<{ url: string; flavour: PeerFlavour; publicKey: Buffer | null; state: PeerState }>): Promise<void> {
  await tx.update(peers).set({ ...set, updatedAt: sql`now()` }).where(eq(peers.id, id));
}

/**
 * A removed peer's delivery state: its push cursor and pull watermark. Deleting them makes
 * a later re-add start from the beginning of the feed (it is sent everything again).
 */
export async function purgePeerState(tx: Tx, id: string): Promise<{ cursor: boolean; watermark: boolean }> {
  const c = await tx.delete(peerCursors).where(eq(peerCursors.peerId, id)).returning({ id: peerCursors.peerId });
  const w = await tx.delete(peerWatermarks).where(eq(peerWatermarks.peerId, id)).returning({ id: peerWatermarks.peerId });
  return { cursor: c.length > 0, watermark: w.length > 0 };
}

/** Which peers are paused and which removed, straight from the table (no running node needed). */
export async function peerStates(db: Db): Promise<{ active: string[]; paused: string[]; removed: string[] }> {
  const out = { active: [] as string[], paused: [] as string[], removed: [] as string[] };
  for (const r of await db.select({ id: peers.id, state: peers.state }).from(peers).orderBy(peers.id)) out[r.state as PeerState]?.push(r.id);
  return out;
}
