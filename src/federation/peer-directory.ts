import type { Database, Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import { PEERS_CHANNEL, listPeerRows, peerStates, type PeerRow, type PeerState } from '../store/peers.js';
import type { PeerSpec } from './peers.js';

/** What changed between two reads of the table, as the schedulers need it. */
export interface PeerChange {
  /** Now active and not before (added, resumed, re-added): deliver and pull at once. */
  activated: PeerSpec[];
  /** Active before, now paused or removed (or gone): stop sending to and pulling from it. */
  deactivated: string[];
  /** Active before and after with another URL or flavour. */
  updated: PeerSpec[];
}

const POLL_MS = 2_000;

/**
 * The live peer list of one process, kept fresh from the `peers` table: polled every
 * couple of seconds and re-read at once on a `NOTIFY memfed_peers` (sent in the
 * transaction of every change, by the admin API or the CLI), so a change reaches every
 * process of the node within seconds, without a restart, even if the notification is lost.
 *
 * `active` is one Map updated in place: holders of it (processors, the DLQ replayer, the
 * ack tracker) always see the current peers without subscribing to anything.
 */
export class PeerDirectory {
  /** Active peers: sent to, pulled from, counted for quorum. */
  readonly active = new Map<string, PeerSpec>();
  private rows = new Map<string, PeerRow>();
  private listeners = new Set<(change: PeerChange) => void>();
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private reading: Promise<void> | null = null;
  private again = false;

  private constructor(
    private readonly db: Db | null,
    private readonly logger: Logger | null,
  ) {}

  /** Reads the table, then keeps following it until `close()`. */
  static async open(database: Database, logger: Logger, opts: { pollMs?: number } = {}): Promise<PeerDirectory> {
    const dir = new PeerDirectory(database.db, logger);
    // The first read must succeed: a directory that never loaded would report no peers
    // (quorum met alone, removed peers accepted, schedulers pruned), so the start fails.
    dir.apply(await listPeerRows(database.db));
    dir.timer = setInterval(() => void dir.refresh(), opts.pollMs ?? POLL_MS);
    dir.timer.unref();
    try {
      const l = await database.sql.listen(PEERS_CHANNEL, () => void dir.refresh());
      dir.unlisten = () => l.unlisten();
    } catch (err) {
      // The poll still follows the table; only the nudge is missing.
      logger.warn({ err }, 'cannot LISTEN for peer changes; following the peers table by polling');
    }
    return dir;
  }

  /** A fixed list (no database): for code paths that take their peers from the config alone. */
  static fixed(specs: PeerSpec[]): PeerDirectory {
    const dir = new PeerDirectory(null, null);
    const at = new Date(0).toISOString();
    dir.apply(specs.map((p) => ({ ...p, state: 'active', publicKey: null, source: 'fed_peers', createdAt: at, updatedAt: at })));
    return dir;
  }

  get(id: string): PeerRow | undefined {
    return this.rows.get(id);
  }

  all(): PeerRow[] {
    return [...this.rows.values()];
  }

  /** Peers not removed (active or paused): a node with none is on its own (no quorum to wait for). */
  knownCount(): number {
    let n = 0;
    for (const r of this.rows.values()) if (r.state !== 'removed') n++;
    return n;
  }

  isRemoved(id: string): boolean {
    return this.rows.get(id)?.state === 'removed';
  }

  ids(state: PeerRow['state']): string[] {
    return this.all().filter((r) => r.state === state).map((r) => r.id);
  }

  /** Called after each read that changed the active set; returns the unsubscribe. */
  onChange(listener: (change: PeerChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads the table now (one read at a time; a request during a read runs one more). */
  async refresh(): Promise<void> {
    if (!this.db) return;
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    const db = this.db;
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          this.apply(await listPeerRows(db));
        } catch (err) {
          this.logger?.warn({ err }, 'peer list read failed; keeping the last one');
        }
      } while (this.again);
    })().finally(() => (this.reading = null));
    return this.reading;
  }

  private apply(rows: PeerRow[]): void {
    const change: PeerChange = { activated: [], deactivated: [], updated: [] };
    const next = new Map(rows.map((r) => [r.id, r]));
    for (const [id, spec] of this.active) {
      const r = next.get(id);
      if (!r || r.state !== 'active') {
        this.active.delete(id);
        change.deactivated.push(id);
      } else if (r.url !== spec.url || r.flavour !== spec.flavour) {
        const updated = { id, url: r.url, flavour: r.flavour };
        this.active.set(id, updated);
        change.updated.push(updated);
      }
    }
    for (const r of rows) {
      if (r.state !== 'active' || this.active.has(r.id)) continue;
      const spec = { id: r.id, url: r.url, flavour: r.flavour };
      this.active.set(r.id, spec);
      change.activated.push(spec);
    }
    this.rows = next;
    if (change.activated.length + change.deactivated.length + change.updated.length === 0) return;
    this.logger?.info({ activated: change.activated.map((p) => p.id), deactivated: change.deactivated, updated: change.updated.map((p) => p.id) }, 'peer list changed');
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.logger?.warn({ err }, 'peer change listener failed');
      }
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
    await this.unlisten?.().catch(() => undefined);
    await this.reading;
  }
}

/** Which peers are paused or removed, read from the table (usable without a running node, e.g. a CLI). */
export { peerStates };

/** A peer as the node has it now, with its state. */
export type PeerNow = PeerSpec & { state: PeerState };

/**
 * Every peer as the node has it now, read once (a CLI, a status report, an admin check;
 * no running directory needed): the table's rows by id, then `FED_PEERS` entries not
 * seeded yet, as active (the node seeds them at its next start). A row wins over FED_PEERS.
 */
export async function peersNow(db: Db, fedPeers: readonly PeerSpec[]): Promise<Map<string, PeerNow>> {
  const out = new Map<string, PeerNow>();
  for (const r of await listPeerRows(db)) out.set(r.id, { id: r.id, url: r.url, flavour: r.flavour, state: r.state });
  for (const p of fedPeers) if (!out.has(p.id)) out.set(p.id, { ...p, state: 'active' });
  return out;
}

/** The active peers of `peersNow` (the ones a replay may send to). */
export function activeOf(peers: ReadonlyMap<string, PeerNow>): Map<string, PeerSpec> {
  const out = new Map<string, PeerSpec>();
  for (const { state, ...spec } of peers.values()) if (state === 'active') out.set(spec.id, spec);
  return out;
}

/** The active peers as the node has them now, read once. */
export const activePeersNow = async (db: Db, fedPeers: readonly PeerSpec[]): Promise<Map<string, PeerSpec>> => activeOf(await peersNow(db, fedPeers));
