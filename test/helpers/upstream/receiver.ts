import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { rustJson } from './json.js';
import { parsePushBody, type UpMemory } from './serde.js';
import { getBytes, NonceCache, postBytes, verifyUpstreamSig } from './signing.js';
import { UpstreamStore } from './store.js';
import { isValidRfc3339, validateAgentId, validateId, validateLink, validateMemory } from './validate.js';

/** f64 fields of upstream's types: serialised as `1.0`, not `1` (serde_json float text). */
export const F64_KEYS = new Set(['confidence', 'source_age_days', 'freshness_factor', 'baseline_per_source']);

/** upstream's daemon settings (the env vars and config each option stands for). */
export interface UpstreamPeerOptions {
  /** This daemon's agent id: `sender_agent_id` of its pushes, `peer=` of its catch-up pulls. */
  id: string;
  /** Verifying keys `<peer id>.pub` (raw 32 bytes), as src/governance/audit.rs load_daemon_verifying_key reads them. */
  keyDir: string;
  /** `[api] api_key`: required on every route but /api/v1/health (src/handlers/transport.rs api_key_auth). */
  apiKey?: string;
  /** AI_MEMORY_FED_REQUIRE_SIG (default on; off skips the whole signature matrix). */
  requireSig?: boolean;
  /** AI_MEMORY_FED_REQUIRE_NONCE (default on). */
  requireNonce?: boolean;
  /** AI_MEMORY_FED_REQUIRE_PEER_ENROLLMENT=1: refuse unsigned requests from unenrolled peers (default off). */
  requirePeerEnrollment?: boolean;
  /** AI_MEMORY_FED_PEER_ATTESTATION: per-peer sender and namespace allowlists (src/federation/peer_attestation.rs). */
  attestation?: Record<string, { allowed_sender_agent_ids?: string[]; allowed_namespaces?: string[] }>;
  /** AI_MEMORY_FED_TRUST_BODY_AGENT_ID=1: skip the x-peer-id / sender_agent_id attestation. */
  trustBodyAgentId?: boolean;
  /**
   * AI_MEMORY_FED_SYNC_TRUST_PEER=1: since serves every row to a peer without an attestation
   * entry. Without it and without an entry, since answers an empty page
   * (`scope_status: "no_allowlist_default_deny"`): upstream's default.
   */
  syncTrustPeer?: boolean;
  /** Storage backend: sqlite (default) or postgres (the SAL receive path, another answer shape). */
  backend?: 'sqlite' | 'postgres';
}

/** One push the peer processed, with the answer it gave. */
export interface PushRecord {
  status: number;
  answer: unknown;
  peer?: string;
  nonce?: string;
}

/** A row the peer refused or could not apply: upstream only logs these (a `warn!`). */
export interface RefusedRow {
  lane: 'memories' | 'deletions' | 'archives' | 'restores' | 'links';
  id: string;
  reason: string;
  via: 'push' | 'poll';
}

// upstream src/handlers/mod.rs MAX_BULK_SIZE.
const MAX_BULK_SIZE = 1000;
// upstream src/lib.rs build_router: DefaultBodyLimit::max(2 * 1024 * 1024).
export const BODY_LIMIT = 2 * 1024 * 1024;

/** axum HeaderValue::to_str: a value with bytes outside visible ASCII and tab reads as absent. */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  return /^[\t\x20-\x7e]*$/.test(s) ? s : undefined;
}

/**
 * An HTTP server that answers like an ai-memory 0.7 daemon on the federation routes:
 * POST /api/v1/sync/push (src/handlers/federation_receive.rs sync_push, and
 * federation_signing_check.rs sync_push_via_store for the postgres backend), GET
 * /api/v1/sync/since (src/handlers/federation_sync_since.rs) and GET /api/v1/health, over an
 * in-memory model of its tables (store.ts).
 */
export class UpstreamPeerServer {
  readonly store = new UpstreamStore();
  readonly nonces = new NonceCache();
  readonly pushes: PushRecord[] = [];
  readonly refused: RefusedRow[] = [];
  /** Raw query strings of the since requests it answered (any status). */
  readonly sinceQueries: string[] = [];
  url = '';
  private server?: Server;

  constructor(readonly opts: UpstreamPeerOptions) {}

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', () => r()));
    const a = this.server.address();
    this.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  /** load_daemon_verifying_key: `<keyDir>/<id>.pub` of 32 bytes, else not enrolled. */
  enrolledKey(peerId: string | undefined): Buffer | undefined {
    if (peerId === undefined) return undefined;
    try {
      const raw = readFileSync(path.join(this.opts.keyDir, `${peerId}.pub`));
      return raw.byteLength === 32 ? raw : undefined;
    } catch {
      return undefined;
    }
  }

  private reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(rustJson(body, F64_KEYS));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const u = new URL(req.url ?? '/', 'http://x');
    const rawQuery = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1) : '';
    const route = `${req.method} ${u.pathname}`;
    if (u.pathname === '/api/v1/health' && req.method === 'GET') return this.reply(res, 200, { status: 'ok', service: 'ai-memory', version: '0.7.0', federation_enabled: true });
    if (route !== 'POST /api/v1/sync/push' && route !== 'GET /api/v1/sync/since') {
      res.writeHead(['/api/v1/sync/push', '/api/v1/sync/since'].includes(u.pathname) ? 405 : 404);
      return void res.end();
    }
    // src/handlers/transport.rs api_key_auth: x-api-key, or ?api_key= (percent-decoded).
    if (this.opts.apiKey !== undefined) {
      const h = header(req, 'x-api-key');
      const q = rawQuery
        .split('&')
        .filter((p) => p.startsWith('api_key='))
        .map((p) => {
          try {
            return decodeURIComponent(p.slice(8));
          } catch {
            return p.slice(8);
          }
        });
      if (h !== this.opts.apiKey && !q.includes(this.opts.apiKey)) return this.reply(res, 401, { error: 'missing or invalid API key' });
    }
    if (route === 'GET /api/v1/sync/since') return this.since(req, res, u.pathname, rawQuery);
    // DefaultBodyLimit: the Bytes extractor refuses a larger body with 413 (plain text).
    if (raw.byteLength > BODY_LIMIT) {
      res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end('Failed to buffer the request body: length limit exceeded');
    }
    const r = this.push(req, raw);
    this.reply(res, r.status, r.answer, r.headers);
  }

  /**
   * federation_signing_check.rs verify_signature_or_reject / verify_get_signature_or_reject:
   * (sig, enrolled) verify, then the nonce gate; (sig, not enrolled) no_enrolled_key;
   * (no sig, enrolled) x_memory_sig_missing; (no sig, not enrolled) allowed unless
   * AI_MEMORY_FED_REQUIRE_PEER_ENROLLMENT. The nonce is recorded only after the signature
   * verified; an empty nonce counts as absent for the gate (but is still signed over).
   */
  private signatureGate(req: IncomingMessage, peer: string | undefined, signed: (nonce: string | undefined) => Uint8Array): { status: number; answer: unknown } | null {
    if (this.opts.requireSig === false) return null;
    const sig = header(req, 'x-memory-sig');
    const nonce = header(req, 'x-memory-nonce');
    const pub = this.enrolledKey(peer);
    if (sig !== undefined && pub) {
      const tag = verifyUpstreamSig(sig, signed(nonce), pub);
      if (tag) return { status: 401, answer: { error: tag } };
      if (nonce !== undefined && nonce !== '') {
        return this.nonces.recordAndCheck(peer ?? '', nonce) === 'replay' ? { status: 401, answer: { error: 'x_memory_nonce_replay' } } : null;
      }
      return this.opts.requireNonce === false ? null : { status: 401, answer: { error: 'x_memory_nonce_missing' } };
    }
    if (sig !== undefined) return { status: 401, answer: { error: 'x_memory_sig_no_enrolled_key' } };
    if (pub) return { status: 401, answer: { error: 'x_memory_sig_missing' } };
    if (this.opts.requirePeerEnrollment) return { status: 401, answer: { error: 'peer_not_enrolled' } };
    return null;
  }

  /** federation_receive.rs extract_peer_id: a header failing validate_agent_id reads as absent. */
  private peerId(req: IncomingMessage): string | undefined {
    const p = header(req, 'x-peer-id');
    return p !== undefined && validateAgentId(p) === null ? p : undefined;
  }

  private push(req: IncomingMessage, raw: Buffer): { status: number; answer: unknown; headers?: Record<string, string> } {
    const done = (status: number, answer: unknown, extra: Partial<PushRecord> = {}) => {
      this.pushes.push({ status, answer, ...extra });
      return { status, answer };
    };
    const peer = this.peerId(req);
    const attest = this.opts.attestation ?? {};
    const hasAllowlist = Object.keys(attest).length > 0;
    // sync_push #1056: with an allowlist configured, an x-peer-id outside it is refused.
    if (peer !== undefined && hasAllowlist && !attest[peer]) return done(401, { error: 'x_peer_id_not_in_allowlist' }, { peer });
    const gate = this.signatureGate(req, peer, (nonce) => postBytes(raw, nonce));
    if (gate) return done(gate.status, gate.answer, { peer });
    // Deserialise only after the signature verified; a serde error refuses the whole body.
    const parsed = parsePushBody(raw);
    if (!parsed.ok) return done(400, { error: `malformed sync_push body: ${parsed.error}` }, { peer });
    const body = parsed.body;
    // peer_attestation.rs attest_sender: header required; a different non-empty body claim
    // must be in the peer's allowed_sender_agent_ids.
    if (!this.opts.trustBodyAgentId) {
      const ph = peer?.trim();
      const claimed = body.sender_agent_id.trim();
      if (!ph) return done(403, { error: 'peer_id_header_missing', claimed: '', peer_header: '' }, { peer });
      if (claimed !== '' && claimed !== ph && !(attest[ph]?.allowed_sender_agent_ids ?? []).includes(claimed)) return done(403, { error: 'sender_agent_id_mismatch', claimed, peer_header: ph }, { peer });
    }
    const bad = validateAgentId(body.sender_agent_id);
    if (bad) return done(400, { error: `invalid sender_agent_id: ${bad}` }, { peer });
    const lanes = ['memories', 'deletions', 'archives', 'restores', 'pendings', 'pending_decisions', 'namespace_meta', 'namespace_meta_clears'] as const;
    const postgres = this.opts.backend === 'postgres';
    for (const lane of lanes) {
      if (body[lane].length > MAX_BULK_SIZE) {
        return done(400, { error: postgres ? `sync_push limited to ${MAX_BULK_SIZE} entries per subcollection` : `sync_push limited to ${MAX_BULK_SIZE} ${lane} per request` }, { peer });
      }
    }
    // The conformance peer does not model the governance lanes; refusing them keeps a test from passing on a lane nobody applied.
    if (body.pendings.length || body.pending_decisions.length || body.namespace_meta.length || body.namespace_meta_clears.length) {
      return done(400, { error: 'conformance_peer_unmodelled_lane' }, { peer });
    }
    // sqlite path: the receiver identity is X-Agent-Id or a fresh anonymous id (identity/mod.rs resolve_http_agent_id).
    let localAgent = body.sender_agent_id;
    if (!postgres) {
      const xa = header(req, 'x-agent-id');
      if (xa !== undefined && xa !== '') {
        const v = validateAgentId(xa);
        if (v) return done(400, { error: `invalid x-agent-id: ${v}` }, { peer });
        localAgent = xa;
      } else localAgent = `anonymous:req-${randomUUID().slice(0, 8)}`;
    }
    const c = { applied: 0, deleted: 0, archived: 0, restored: 0, links_applied: 0, noop: 0, skipped: 0 };
    const refuse = (lane: RefusedRow['lane'], id: string, reason: string) => {
      c.skipped++;
      this.refused.push({ lane, id, reason, via: 'push' });
    };
    let latest: string | undefined;
    for (const { mem, metadataNode } of body.memories) {
      const v = validateMemory(mem, metadataNode);
      if (v) {
        refuse('memories', mem.id, v);
        continue;
      }
      if (latest === undefined || mem.updated_at > latest) latest = mem.updated_at;
      // Dry run: a valid row counts `noop` (upstream counts after validation).
      if (body.dry_run) {
        c.noop++;
        continue;
      }
      try {
        this.store.insertIfNewer(stampReflectionOrigin(mem, body.sender_agent_id));
        c.applied++;
      } catch (e) {
        refuse('memories', mem.id, (e as Error).message);
      }
    }
    const idLane = (lane: 'deletions' | 'archives' | 'restores', ids: string[], apply: (id: string) => boolean, counter: 'deleted' | 'archived' | 'restored') => {
      for (const id of ids) {
        const v = validateId(id);
        if (v) {
          refuse(lane, id, v);
          continue;
        }
        if (body.dry_run) {
          c.noop++;
          continue;
        }
        try {
          if (apply(id)) c[counter]++;
          else c.noop++;
        } catch (e) {
          refuse(lane, id, (e as Error).message);
        }
      }
    };
    const links = () => {
      for (const l of body.links) {
        const v = validateLink(l);
        const lid = `${l.source_id}->${l.target_id}/${l.relation}`;
        if (v) {
          refuse('links', lid, v);
          continue;
        }
        if (body.dry_run) {
          c.noop++;
          continue;
        }
        // The H3 link-signature check needs upstream's CBOR signable form, not modelled: a signed link from an enrolled observer is refused rather than trusted.
        if (l.signature && l.observed_by && this.enrolledKey(l.observed_by)) {
          refuse('links', lid, 'conformance peer does not verify link signatures');
          continue;
        }
        try {
          this.store.createLinkInbound(l, 'unsigned');
          c.links_applied++;
        } catch (e) {
          refuse('links', lid, (e as Error).message);
        }
      }
    };
    idLane('deletions', body.deletions, (id) => this.store.delete(id), 'deleted');
    if (postgres) {
      // sync_push_via_store: links via the trait; archives/restores (and the governance
      // lanes) are not applied and counted in `unsupported_on_postgres`.
      links();
      const answer = {
        applied: c.applied,
        deleted: c.deleted,
        links_applied: c.links_applied,
        noop: c.noop,
        skipped: c.skipped,
        quota_refused: 0,
        unsupported_on_postgres: body.archives.length + body.restores.length,
        dry_run: body.dry_run,
        receiver_agent_id: body.sender_agent_id,
        storage_backend: 'postgres',
        note: 'pendings / archives / restores / namespace_meta are sqlite-only in v0.7.0; memories / deletions / links round-trip via the SAL trait',
      };
      return done(200, answer, { peer, nonce: header(req, 'x-memory-nonce') });
    }
    idLane('archives', body.archives, (id) => this.store.archive(id, 'sync_push'), 'archived');
    idLane('restores', body.restores, (id) => this.store.restore(id), 'restored');
    links();
    if (!body.dry_run && latest !== undefined) this.store.observe(localAgent, body.sender_agent_id, latest);
    const answer = {
      applied: c.applied,
      deleted: c.deleted,
      archived: c.archived,
      restored: c.restored,
      links_applied: c.links_applied,
      pendings_applied: 0,
      pending_decisions_applied: 0,
      namespace_meta_applied: 0,
      namespace_meta_cleared: 0,
      noop: c.noop,
      skipped: c.skipped,
      quota_refused: 0,
      dry_run: body.dry_run,
      receiver_agent_id: localAgent,
      receiver_clock: this.store.clock(localAgent),
    };
    return done(200, answer, { peer, nonce: header(req, 'x-memory-nonce') });
  }

  /** src/handlers/federation_sync_since.rs sync_since. */
  private since(req: IncomingMessage, res: ServerResponse, pathname: string, rawQuery: string): void {
    this.sinceQueries.push(rawQuery);
    // Query<SyncSinceQuery> is an extractor: its rejections come before the handler's signature gate.
    // Query<SyncSinceQuery> (serde_urlencoded): `+` is a space, a duplicate field and a non-usize limit are 400 (plain text).
    const q: Record<string, string> = {};
    for (const part of rawQuery === '' ? [] : rawQuery.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const dec = (s: string) => {
        try {
          return decodeURIComponent(s.replace(/\+/g, ' '));
        } catch {
          return s;
        }
      };
      const k = dec(eq < 0 ? part : part.slice(0, eq));
      const v = dec(eq < 0 ? '' : part.slice(eq + 1));
      if (['since', 'limit', 'peer'].includes(k) && k in q) {
        res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
        return void res.end(`Failed to deserialize query string: duplicate field \`${k}\``);
      }
      q[k] = v;
    }
    if (q.limit !== undefined && !/^[0-9]+$/.test(q.limit)) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end('Failed to deserialize query string: limit: invalid digit found in string');
    }
    const peer = this.peerId(req);
    const gate = this.signatureGate(req, peer, (nonce) => getBytes(pathname, rawQuery, nonce));
    if (gate) return this.reply(res, gate.status, gate.answer);
    const since = q.since;
    if (since !== undefined && since !== '' && !isValidRfc3339(since)) return this.reply(res, 400, { error: 'invalid `since` parameter — expected RFC 3339 timestamp' });
    const limit = Math.min(q.limit === undefined ? 500 : Number(q.limit), 10_000);
    // #239 / #948: the namespace allowlist of the x-peer-id's attestation entry, else the
    // AI_MEMORY_FED_SYNC_TRUST_PEER bypass, else an empty page.
    const scope = peer !== undefined ? this.opts.attestation?.[peer] : undefined;
    const legacy = !scope && !!this.opts.syncTrustPeer;
    if (!scope && !legacy) {
      return this.reply(res, 200, { count: 0, limit, updated_since: since ?? null, earliest_updated_at: null, latest_updated_at: null, memories: [], excluded_for_scope: 0, excluded_for_scope_private: 0, scope_status: 'no_allowlist_default_deny' });
    }
    const caller = peer ?? header(req, 'x-agent-id') ?? '';
    const rows = this.store.updatedSince(since, limit);
    const inNs = rows.filter((m) => legacy || (scope?.allowed_namespaces ?? []).some((p) => globMatch(p, m.namespace)));
    const visible = inNs.filter((m) => legacy || projectable(m, caller));
    this.reply(res, 200, {
      count: visible.length,
      limit,
      updated_since: since ?? null,
      earliest_updated_at: visible[0]?.updated_at ?? null,
      latest_updated_at: visible.at(-1)?.updated_at ?? null,
      memories: visible,
      excluded_for_scope: rows.length - inNs.length,
      excluded_for_scope_private: inNs.length - visible.length,
      scope_status: legacy ? 'legacy_bypass' : 'scoped',
    });
  }
}

/** peer_attestation.rs glob_match. */
export function globMatch(pattern: string, target: string): boolean {
  if (pattern === '**' || pattern === '*') return true;
  if (pattern.endsWith('/**')) {
    const p = pattern.slice(0, -3);
    return target === p || target.startsWith(`${p}/`);
  }
  if (pattern.endsWith('/*')) {
    const p = pattern.slice(0, -2);
    return target.startsWith(`${p}/`) && !target.slice(p.length + 1).includes('/');
  }
  if (pattern.startsWith('*/')) {
    const sfx = pattern.slice(2);
    return target.endsWith(`/${sfx}`) && !target.slice(0, -(sfx.length + 1)).includes('/');
  }
  return pattern === target;
}

/**
 * federation_sync_since.rs federation_projectable: `metadata.federation_share === true`, or
 * src/visibility.rs is_visible_to_caller: scope (default "private") not private, or the caller
 * is metadata.agent_id or metadata.target_agent_id.
 */
export function projectable(m: UpMemory, caller: string): boolean {
  const meta = (m.metadata && typeof m.metadata === 'object' ? m.metadata : {}) as Record<string, unknown>;
  if (meta.federation_share === true) return true;
  const scope = typeof meta.scope === 'string' ? meta.scope : 'private';
  if (scope !== 'private') return true;
  const owner = typeof meta.agent_id === 'string' ? meta.agent_id : '';
  if (owner === caller) return true;
  return (typeof meta.target_agent_id === 'string' ? meta.target_agent_id : '') === caller;
}

/**
 * src/federation/reflection_bookkeeping.rs stamp_reflection_origin: a row with
 * reflection_depth > 0 gets `metadata.reflection_origin` (unless present), with the
 * receiver's default cap (GovernancePolicy default; assumed 3 here).
 */
export function stampReflectionOrigin(mem: UpMemory, sender: string, localCap = 3): UpMemory {
  if (mem.reflection_depth <= 0) return mem;
  const meta = mem.metadata && typeof mem.metadata === 'object' && !Array.isArray(mem.metadata) ? { ...(mem.metadata as Record<string, unknown>) } : {};
  if (!('reflection_origin' in meta)) meta.reflection_origin = { peer_origin: sender, original_depth: mem.reflection_depth, local_depth_at_arrival: localCap };
  return { ...mem, metadata: meta };
}
