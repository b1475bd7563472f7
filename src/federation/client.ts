import type { KeyObject } from 'node:crypto';
import { Agent, fetch, type Response } from 'undici';
import type { PeerConfig } from '../config.js';
import { getSigningBytes, newNonce, postSigningBytes, signatureHeader } from './signing.js';
import { readCapped } from '../streams.js';
import type { PushResponse } from './wire.js';

/** How a failed peer request is handled (docs/invariants.md, point 6). */
export type FailureClass = 'transient' | 'throttle' | 'unenrolled' | 'permanent';

export class PeerRequestError extends Error {
  constructor(
    readonly failureClass: FailureClass,
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
    /** The response was larger than the client accepts (ask for less). */
    readonly tooLarge = false,
    /** The peer's stable `code` from an error body, when it sent one (e.g. RESYNC_REQUIRED). */
    readonly code?: string,
  ) {
    // The class leads the message so a failed job in Bull Board reads at a glance.
    super(`[${failureClass}] ${message}`);
    this.name = 'PeerRequestError';
  }
}

export function classifyStatus(status: number): FailureClass {
  if (status === 429) return 'throttle';
  if (status === 401 || status === 403) return 'unenrolled';
  if (status === 400 || status === 413 || status === 422) return 'permanent';
  // 5xx, 408, 404 (a peer mid-deploy or a URL typo being fixed) and the rest: try again.
  return 'transient';
}

/** `Retry-After` as seconds or an HTTP date, capped at 10 minutes. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (!value) return undefined;
  const s = value.trim();
  let ms: number;
  if (/^\d{1,9}$/.test(s)) ms = Number(s) * 1000;
  else {
    // Only the IMF-fixdate form of RFC 9110; Date.parse alone accepts "3.5" or "-1".
    if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(s)) return undefined;
    const t = Date.parse(s);
    if (Number.isNaN(t)) return undefined;
    ms = t - nowMs;
  }
  return Math.min(Math.max(ms, 0), 600_000);
}

export interface PeerClientOptions {
  selfId: string;
  signingKey: KeyObject | null;
  apiKey: string;
  timeoutMs: number;
  /**
   * TLS for https:// peers (src/tls.ts clientTlsOptions): `ca` replaces the system roots
   * the peer's certificate is verified against; `cert`/`key` are presented for mutual TLS.
   */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; minVersion?: 'TLSv1.2' | 'TLSv1.3' };
}

const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** Signed outbound federation requests. No BullMQ here: callers map errors to retries. */
export class PeerClient {
  private readonly closing = new AbortController();
  // Its own connection pool: the process-wide fetch cannot take a CA or client certificate.
  private readonly dispatcher: Agent;

  constructor(private readonly opts: PeerClientOptions) {
    this.dispatcher = new Agent({ connect: { ...opts.tls } });
  }

  /**
   * Ends every request in flight and any later one (a worker whose shutdown grace is
   * over): they fail as transient, so their jobs are retried, not left hanging.
   */
  abortAll(): void {
    this.closing.abort();
  }

  /** Closes the connection pool (after abortAll, or when no request is in flight). */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private headers(signed: Uint8Array, nonce: string): Record<string, string> {
    const h: Record<string, string> = { 'x-peer-id': this.opts.selfId, 'x-memory-nonce': nonce };
    if (this.opts.signingKey) h['x-memory-sig'] = signatureHeader(this.opts.signingKey, signed);
    if (this.opts.apiKey) h['x-api-key'] = this.opts.apiKey;
    return h;
  }

  async push(peer: PeerConfig, body: unknown): Promise<PushResponse> {
    const raw = Buffer.from(JSON.stringify(body), 'utf8');
    const nonce = newNonce();
    const headers = { ...this.headers(postSigningBytes(raw, nonce), nonce), 'content-type': 'application/json' };
    return (await this.request(peer, 'POST', '/api/v1/sync/push', '', headers, raw)) as PushResponse;
  }

  /** A signed anti-entropy request (docs/wire.md, Anti-entropy repair): memfed peers only. */
  async repair(peer: PeerConfig, body: Record<string, unknown>): Promise<unknown> {
    const raw = Buffer.from(JSON.stringify({ ...body, sender_agent_id: this.opts.selfId, recipient: peer.id }), 'utf8');
    const nonce = newNonce();
    const headers = { ...this.headers(postSigningBytes(raw, nonce), nonce), 'content-type': 'application/json' };
    return this.request(peer, 'POST', '/api/v1/sync/repair', '', headers, raw);
  }

  /** Signed GET of the peer's change feed (`cursor` for memfed peers, `since` for ai-memory). */
  async since(peer: PeerConfig, params: Record<string, string>): Promise<unknown> {
    // `to` names the audience inside the signed bytes: a pull signed for one peer is useless at another.
    const query = new URLSearchParams({ ...params, peer: this.opts.selfId, to: peer.id }).toString();
    const path = '/api/v1/sync/since';
    const nonce = newNonce();
    return this.request(peer, 'GET', path, query, this.headers(getSigningBytes(path, query, nonce), nonce));
  }

  /** Signed GET of a page of the peer's snapshot (docs/wire.md, Snapshot bootstrap). */
  async snapshot(peer: PeerConfig, params: Record<string, string>): Promise<unknown> {
    const query = new URLSearchParams({ ...params, peer: this.opts.selfId, to: peer.id }).toString();
    const path = '/api/v1/sync/snapshot';
    const nonce = newNonce();
    return this.request(peer, 'GET', path, query, this.headers(getSigningBytes(path, query, nonce), nonce));
  }

  private async request(peer: PeerConfig, method: 'GET' | 'POST', path: string, query: string, headers: Record<string, string>, body?: Buffer): Promise<unknown> {
    const url = `${peer.url}${path}${query ? `?${query}` : ''}`;
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body, signal: AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), this.closing.signal]), redirect: 'manual', dispatcher: this.dispatcher });
    } catch (err) {
      // A certificate the CA does not vouch for fails here too (cause.code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE).
      const e = err as Error & { cause?: { code?: string } };
      const what = e.name === 'TimeoutError' ? `timeout after ${this.opts.timeoutMs} ms` : this.closing.signal.aborted ? 'aborted: shutting down' : (e.cause?.code ?? e.message);
      throw new PeerRequestError('transient', `${method} ${path} to ${peer.id}: ${what}`);
    }
    const payload = await readCapped(res.body, MAX_RESPONSE_BYTES).catch((err: Error) => {
      throw new PeerRequestError('transient', `${method} ${path} to ${peer.id}: reading response: ${err.message}`, res.status);
    });
    if (payload === null) throw new PeerRequestError('transient', `${method} ${path} to ${peer.id}: response exceeds ${MAX_RESPONSE_BYTES} bytes`, res.status, undefined, true);
    const text = payload.toString('utf8');
    if (!res.ok) {
      const cls = classifyStatus(res.status);
      throw new PeerRequestError(cls, `${method} ${path} to ${peer.id}: HTTP ${res.status} ${text.slice(0, 300)}`, res.status, parseRetryAfter(res.headers.get('retry-after')), false, errorCodeOf(text));
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new PeerRequestError('transient', `${method} ${path} to ${peer.id}: response is not JSON`, res.status);
    }
  }
}

/** The `code` of a JSON error body (`{"error": ..., "code": ...}`), if it has a string one. */
function errorCodeOf(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { code?: unknown } | null)?.code;
    return typeof code === 'string' && code.length <= 64 ? code : undefined;
  } catch {
    return undefined;
  }
}
