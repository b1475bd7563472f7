import { keyIdFor } from '../audit/chain.js';
import type { AuditRecord, AuditRecorder } from '../audit/events.js';
import type { Db, Tx } from '../db/client.js';
import { ApiError, badRequest } from '../errors.js';
import { changePeer, getPeerRow, insertPeerRow, listPeerRows, purgePeerState, updatePeerRow, type PeerRow, type PeerState } from '../store/peers.js';
import type { PeerNow } from './peer-directory.js';
import { peerSpecFrom, type PeerSpec } from './peers.js';
import { publicKeyObject } from './signing.js';

/*
 * The operator's peer actions, one implementation for the admin API and `memfed peers`:
 * the same input is accepted or refused the same way (stable codes), each change is one
 * locked transaction that notifies every process of the node, and each is audited.
 */

export interface PeerAdminDeps {
  db: Db;
  audit: AuditRecorder;
  /** This node's id: never a peer of itself. */
  nodeId: string;
}

/** A peer as the API and `--json` show it (the key as base64 and the audit-style key id). */
export interface PeerView {
  id: string;
  url: string;
  flavour: string;
  state: PeerState;
  source: string;
  public_key: string | null;
  key_id: string | null;
  created_at: string;
  updated_at: string;
}

export const peerView = (r: PeerRow): PeerView => ({
  id: r.id,
  url: r.url,
  flavour: r.flavour,
  state: r.state,
  source: r.source,
  public_key: r.publicKey ? r.publicKey.toString('base64') : null,
  key_id: r.publicKey ? keyIdFor(r.publicKey) : null,
  created_at: r.createdAt,
  updated_at: r.updatedAt,
});

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * An Ed25519 public key as enrolled: raw 32 bytes (the `.pub` file `memfed keys generate`
 * writes) or base64 text of them (surrounding whitespace allowed). Anything else: INVALID_KEY.
 */
export function parsePublicKey(input: Buffer | string): Buffer {
  let raw: Buffer | null = null;
  if (Buffer.isBuffer(input) && input.byteLength === 32) raw = input;
  else {
    const text = (Buffer.isBuffer(input) ? input.toString('latin1') : input).trim();
    if (BASE64.test(text) && text.length % 4 === 0) raw = Buffer.from(text, 'base64');
  }
  if (!raw || raw.byteLength !== 32) throw badRequest('INVALID_KEY', 'public key: expected 32 raw bytes or their base64 (44 characters)', { field: 'key' });
  try {
    publicKeyObject(raw);
  } catch {
    throw badRequest('INVALID_KEY', 'public key: not an Ed25519 public key', { field: 'key' });
  }
  return Buffer.from(raw);
}

const str = (v: unknown, field: string, required: boolean): string | undefined => {
  if (v === undefined || v === null) {
    if (required) throw badRequest('INVALID_PEER', `${field} is required`, { field });
    return undefined;
  }
  if (typeof v !== 'string' || v.length > 2048) throw badRequest('INVALID_PEER', `${field} must be a string`, { field });
  return v;
};

/** A peer id as given to pause/resume/remove/show: the same rule as FED_PEERS. */
export function checkPeerId(id: unknown): string {
  const s = str(id, 'id', true)!;
  const r = peerSpecFrom({ id: s, url: 'http://x' });
  if (!r.ok) throw badRequest('INVALID_PEER', r.problem, { field: 'id' });
  return r.peer.id;
}

/** `{id, url, flavour?, key?}` checked by the FED_PEERS rules (peerSpecFrom); `key` is base64. */
export function checkNewPeer(input: Record<string, unknown>, nodeId: string): { spec: PeerSpec; key: Buffer | null } {
  const id = str(input.id, 'id', true)!;
  const url = str(input.url, 'url', true)!;
  const flavour = str(input.flavour, 'flavour', false);
  const r = peerSpecFrom({ id, url, ...(flavour !== undefined ? { flavour } : {}) });
  if (!r.ok) throw badRequest('INVALID_PEER', r.problem);
  if (r.peer.id === nodeId) throw badRequest('INVALID_PEER', `peer id "${r.peer.id}" is this node's own id (NODE_ID)`, { field: 'id' });
  const key = input.key === undefined || input.key === null ? null : parsePublicKey(str(input.key, 'key', true)!);
  return { spec: r.peer, key };
}

const unknownPeer = (id: string) => new ApiError(404, 'UNKNOWN_PEER', `peer ${id} is not known (memfed peers list)`);

export async function listPeers(db: Db): Promise<PeerView[]> {
  return (await listPeerRows(db)).map(peerView);
}

export async function showPeer(db: Db, id: string): Promise<PeerView> {
  const row = await getPeerRow(db, checkPeerId(id));
  if (!row) throw unknownPeer(id);
  return peerView(row);
}

const keyId = (k: Buffer | null) => (k ? keyIdFor(k) : null);

type Events = AuditRecord[];

/** The change itself; when the enrolled key changed, also a `key.changed` event as for this node's own key. */
function audited(events: Events, actor: string, action: string, id: string, fromState: PeerState | null, after: { url?: string; flavour?: string; state?: PeerState; key?: Buffer | null }): void {
  const { key, ...rest } = after;
  events.push({ kind: 'peer.changed', actor, subject: id, details: { action, from_state: fromState, ...rest, ...(key !== undefined ? { key_id: keyId(key) } : {}) } });
}

function auditKeyChange(events: Events, actor: string, id: string, from: Buffer | null, to: Buffer | null): void {
  if (keyId(from) === keyId(to)) return;
  events.push({ kind: 'key.changed', actor, subject: id, details: { action: 'peer_rekeyed', from_key_id: keyId(from), to_key_id: keyId(to) } });
}

/** One locked change; its audit events are recorded once it committed (a failed change records nothing). */
async function change<T>(deps: PeerAdminDeps, id: string, fn: (tx: Tx, row: PeerRow | null, events: Events) => Promise<{ wrote: boolean; result: T }>): Promise<T> {
  const events: Events = [];
  const result = await changePeer(deps.db, id, (tx, row) => fn(tx, row, events));
  for (const e of events) deps.audit.record(e);
  return result;
}

/**
 * Adds a peer (active at once). A removed peer may be added again: its row, cursor and
 * DLQ rows were kept, so it continues where it stopped. Any other existing id: PEER_EXISTS.
 */
export async function addPeer(deps: PeerAdminDeps, input: Record<string, unknown>, actor: string): Promise<PeerView> {
  const { spec, key } = checkNewPeer(input, deps.nodeId);
  return change(deps, spec.id, async (tx, row, events) => {
    const exists = () => new ApiError(409, 'PEER_EXISTS', `peer ${spec.id} exists (state ${row?.state ?? 'active'}); use update / rekey / pause / resume, or remove it first`);
    if (row && row.state !== 'removed') throw exists();
    if (row) await updatePeerRow(tx, spec.id, { url: spec.url, flavour: spec.flavour, publicKey: key, state: 'active' });
    else if (!(await insertPeerRow(tx, spec, key))) throw exists();
    audited(events, actor, row ? 're-added' : 'added', spec.id, row?.state ?? null, { url: spec.url, flavour: spec.flavour, state: 'active', key });
    auditKeyChange(events, actor, spec.id, row?.publicKey ?? null, key);
    return { wrote: true, result: peerView((await getPeerRow(tx, spec.id))!) };
  });
}

/** pause | resume | remove: idempotent (already in that state: unchanged, `changed: false`). */
export async function setPeerState(deps: PeerAdminDeps, rawId: string, to: 'paused' | 'active' | 'removed', actor: string): Promise<{ peer: PeerView; changed: boolean }> {
  const id = checkPeerId(rawId);
  return change<{ peer: PeerView; changed: boolean }>(deps, id, async (tx, row, events) => {
    if (!row) throw unknownPeer(id);
    if (row.state === to) return { wrote: false, result: { peer: peerView(row), changed: false } };
    if (row.state === 'removed') throw new ApiError(409, 'PEER_REMOVED', `peer ${id} was removed; add it again (memfed peers add) to bring it back`);
    await updatePeerRow(tx, id, { state: to });
    audited(events, actor, to === 'paused' ? 'paused' : to === 'active' ? 'resumed' : 'removed', id, row.state, { state: to });
    return { wrote: true, result: { peer: peerView((await getPeerRow(tx, id))!), changed: true } };
  });
}

/** `{url?, flavour?}` of an update: strings, at least one (their values are judged with the stored peer). */
export function checkPeerUpdate(input: Record<string, unknown>): { url: string | undefined; flavour: string | undefined } {
  const url = str(input.url, 'url', false);
  const flavour = str(input.flavour, 'flavour', false);
  if (url === undefined && flavour === undefined) throw badRequest('INVALID_PEER', 'name a url and/or a flavour to change');
  // The values themselves are judged before the peer is looked up: bad input is a 400
  // whether or not the peer exists, from the CLI and the API alike.
  const r = peerSpecFrom({ id: 'x', url: url ?? 'http://x', ...(flavour !== undefined ? { flavour } : {}) }, 'the update');
  if (!r.ok) throw badRequest('INVALID_PEER', r.problem);
  return { url, flavour };
}

/**
 * Changes a peer's URL and/or flavour (the FED_PEERS rules); in effect at once, its cursor,
 * watermark and key unchanged. Not for a removed peer (add it again instead).
 */
export async function updatePeer(deps: PeerAdminDeps, rawId: string, input: Record<string, unknown>, actor: string): Promise<{ peer: PeerView; changed: boolean }> {
  const id = checkPeerId(rawId);
  const { url, flavour } = checkPeerUpdate(input);
  return change<{ peer: PeerView; changed: boolean }>(deps, id, async (tx, row, events) => {
    if (!row) throw unknownPeer(id);
    const r = peerSpecFrom({ id, url: url ?? row.url, flavour: flavour ?? row.flavour });
    if (!r.ok) throw badRequest('INVALID_PEER', r.problem);
    if (row.state === 'removed') throw new ApiError(409, 'PEER_REMOVED', `peer ${id} was removed; add it again with its new URL or flavour`);
    if (r.peer.url === row.url && r.peer.flavour === row.flavour) return { wrote: false, result: { peer: peerView(row), changed: false } };
    await updatePeerRow(tx, id, { url: r.peer.url, flavour: r.peer.flavour });
    audited(events, actor, 'updated', id, row.state, { url: r.peer.url, flavour: r.peer.flavour });
    return { wrote: true, result: { peer: peerView((await getPeerRow(tx, id))!), changed: true } };
  });
}

/** Replaces (or, with null, withdraws) a peer's enrolled key; its key file, if any, applies again without one. */
export async function rekeyPeer(deps: PeerAdminDeps, rawId: string, key: Buffer | null, actor: string): Promise<{ peer: PeerView; changed: boolean }> {
  const id = checkPeerId(rawId);
  return change<{ peer: PeerView; changed: boolean }>(deps, id, async (tx, row, events) => {
    if (!row) throw unknownPeer(id);
    if (row.state === 'removed') throw new ApiError(409, 'PEER_REMOVED', `peer ${id} was removed; add it again with its key`);
    if (keyId(row.publicKey) === keyId(key)) return { wrote: false, result: { peer: peerView(row), changed: false } };
    await updatePeerRow(tx, id, { publicKey: key });
    audited(events, actor, 'rekeyed', id, row.state, { key });
    auditKeyChange(events, actor, id, row.publicKey, key);
    return { wrote: true, result: { peer: peerView((await getPeerRow(tx, id))!), changed: true } };
  });
}

/**
 * Forgets a removed peer's delivery state (push cursor, pull watermark); the row stays
 * `removed` so its requests are still refused and `FED_PEERS` does not bring it back.
 * DLQ rows are purged with `memfed dlq purge --peer`.
 */
export async function purgePeer(deps: PeerAdminDeps, rawId: string, actor: string): Promise<{ cursor: boolean; watermark: boolean }> {
  const id = checkPeerId(rawId);
  return change(deps, id, async (tx, row, events) => {
    if (!row) throw unknownPeer(id);
    if (row.state !== 'removed') throw new ApiError(409, 'PEER_NOT_REMOVED', `peer ${id} is ${row.state}; remove it before purging its state`);
    const r = await purgePeerState(tx, id);
    audited(events, actor, 'purged', id, row.state, {});
    return { wrote: false, result: r };
  });
}

/**
 * A DLQ replay for one peer is for a peer this node sends to now: an unknown id is 400
 * UNKNOWN_PEER, a paused or removed one 409 PEER_NOT_ACTIVE (nothing would be sent; resume
 * it first). The admin API and `memfed dlq replay --peer` both ask here, of `peersNow`.
 */
export function checkReplayPeer(peers: ReadonlyMap<string, PeerNow>, id: string): void {
  const peer = peers.get(id);
  if (peer?.state === 'active') return;
  if (peer) throw new ApiError(409, 'PEER_NOT_ACTIVE', `peer ${id} is ${peer.state}: nothing would be replayed (memfed peers resume --id ${id})`);
  throw new ApiError(400, 'UNKNOWN_PEER', `peer ${id} is not configured (memfed peers list)`);
}
