import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { parseSignatureHeader, postSigningBytes, publicKeyObject, verifySignature } from '../../src/federation/signing.js';

/**
 * The upstream conformance peer (test/helpers/upstream/): UpstreamPeer follows ai-memory
 * 0.7's own receive, validate, since and catch-up code. UpstreamReceiver below is the older,
 * lenient fake with fault knobs (refuse, failWith, driftIds); see docs/testing.md.
 */
export * from './upstream/index.js';

/**
 * A lenient stand-in for an upstream receiver (not the conformance peer): verifies the signature against the
 * sender's enrolled .pub, applies memories, answers counters only (no `results`), and
 * counts refused rows in `skipped`. `refuse` makes chosen ids poison.
 */
export class UpstreamReceiver {
  readonly received = new Map<string, Record<string, unknown>>();
  readonly deleted = new Set<string>();
  /** memfed's `tombstones` lane as received (id -> deleted_at); upstream itself reads only `deletions`. */
  readonly tombstones = new Map<string, string>();
  /** How many times each memory id was received (duplicate-delivery checks). */
  readonly deliveries = new Map<string, number>();
  /** How many times each memory id was sent to us at all, refused or not. */
  readonly offered = new Map<string, number>();
  requests = 0;
  refuse = new Set<string>();
  /** What GET /api/v1/sync/since serves (upstream semantics: since exclusive, no cursor). */
  serve: Array<Record<string, unknown>> = [];
  sinceRequests: string[] = [];
  /** Body size in bytes of every push request it processed (not those answered by failWith). */
  readonly pushBodyBytes: number[] = [];
  /**
   * When non-empty, the answer carries per-row `results` (as a memfed receiver does), and
   * these ids come back under another id: a peer whose results drift from what was sent.
   */
  driftIds = new Set<string>();
  /**
   * When set, a push body over this many bytes is answered 413 before anything else is
   * looked at, as upstream's router does (upstream src/lib.rs: DefaultBodyLimit::max(2 MiB)).
   */
  bodyLimit: number | null = null;
  /** Push requests answered 413 because of `bodyLimit`. */
  tooLarge = 0;
  /** When set, every request answers this status (e.g. 503, 429). */
  failWith: { status: number; headers?: Record<string, string> } | null = null;
  private server!: Server;
  url = '';

  constructor(readonly id: string, private readonly keyDir: string) {}

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        const raw = Buffer.concat(chunks);
        const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(body));
        };
        if (this.failWith) return reply(this.failWith.status, { error: 'induced' }, this.failWith.headers);
        if (req.method === 'GET' && req.url?.startsWith('/api/v1/sync/since')) {
          const q = new URL(req.url, 'http://x').searchParams;
          this.sinceRequests.push(q.toString());
          const since = q.get('since');
          const limit = Math.min(Number(q.get('limit') ?? 500), 10_000);
          const rows = this.serve
            .filter((m) => since === null || String(m.updated_at) > since)
            .sort((a, b) => (String(a.updated_at) < String(b.updated_at) ? -1 : String(a.updated_at) > String(b.updated_at) ? 1 : String(a.id) < String(b.id) ? -1 : 1))
            .slice(0, limit);
          return reply(200, { count: rows.length, limit, updated_since: since, earliest_updated_at: rows[0]?.updated_at ?? null, latest_updated_at: rows.at(-1)?.updated_at ?? null, memories: rows });
        }
        if (req.url !== '/api/v1/sync/push' || req.method !== 'POST') return reply(404, { error: 'not found' });
        if (this.bodyLimit !== null && raw.byteLength > this.bodyLimit) {
          this.tooLarge++;
          return reply(413, { error: 'length limit exceeded' });
        }
        const sender = String(req.headers['x-peer-id'] ?? '');
        const sig = parseSignatureHeader(String(req.headers['x-memory-sig'] ?? ''));
        let pub: Buffer;
        try {
          pub = readFileSync(path.join(this.keyDir, `${sender}.pub`));
        } catch {
          return reply(401, { error: 'x_memory_sig_no_enrolled_key' });
        }
        const nonce = req.headers['x-memory-nonce'] as string | undefined;
        if (!sig.ok || !verifySignature(publicKeyObject(pub), postSigningBytes(raw, nonce), sig.signature)) return reply(401, { error: 'x_memory_sig_bad_signature' });
        this.pushBodyBytes.push(raw.byteLength);
        const body = JSON.parse(raw.toString()) as { memories: Array<Record<string, unknown>>; deletions?: string[]; tombstones?: Array<{ id: string; deleted_at: string }> };
        for (const t of body.tombstones ?? []) this.tombstones.set(t.id, t.deleted_at);
        let applied = 0, skipped = 0, deleted = 0;
        for (const m of body.memories) {
          this.offered.set(String(m.id), (this.offered.get(String(m.id)) ?? 0) + 1);
          if (this.refuse.has(String(m.id))) skipped++;
          else {
            this.received.set(String(m.id), m);
            this.deliveries.set(String(m.id), (this.deliveries.get(String(m.id)) ?? 0) + 1);
            applied++;
          }
        }
        for (const id of body.deletions ?? []) {
          this.deleted.add(id);
          this.received.delete(id);
          deleted++;
        }
        const results =
          this.driftIds.size === 0
            ? undefined
            : [...body.memories.map((m) => String(m.id)), ...(body.deletions ?? [])].map((id) => ({ id: this.driftIds.has(id) ? `${id}-drifted` : id, status: this.refuse.has(id) ? 'skipped' : 'applied' }));
        reply(200, { applied, deleted, noop: 0, skipped, dry_run: false, receiver_agent_id: this.id, ...(results ? { results } : {}) });
      });
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', () => r()));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
