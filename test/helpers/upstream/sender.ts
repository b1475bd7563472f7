import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { privateKeyObject, signatureHeader } from '../../../src/federation/signing.js';
import { rustJson } from './json.js';
import { F64_KEYS } from './receiver.js';
import type { UpLink, UpMemory } from './serde.js';
import { postBytes } from './signing.js';

/**
 * upstream 0.7's push sender (src/federation/sync.rs post_once, broadcast_*_quorum,
 * bulk_catchup_push). Facts:
 * - The body is a serde_json::Value serialised once (compact, keys sorted: no
 *   `preserve_order`), f64 fields as `1.0`; the same bytes are signed and sent.
 * - Store: `{"dry_run":false,"memories":[mem],"sender_agent_id":..}`, one memory per request;
 *   delete: `"memories":[],"deletions":[id]`; archive: `"archives":[id]`; restore:
 *   `"restores":[id]`; link: `"links":[link]`; bulk catch-up: every row in `memories`.
 * - Headers: `content-type: application/json`; `Idempotency-Key: <memory id>` (a link's is
 *   `<source>→<target>`, raw UTF-8; none on bulk catch-up, which sends `X-Catchup: bulk`);
 *   `x-api-key` when configured; with a signing key `x-memory-sig: ed25519=<b64>` over
 *   `body || 0x00 || nonce` and `x-memory-nonce: <fresh UUIDv4>`; `x-peer-id:
 *   <sender_agent_id>`. No x-agent-id.
 * - post_and_classify counts any 2xx as an ack (a body `ids` array not naming the id is id
 *   drift), retries a failure once after 250 ms.
 */
export interface SendResult {
  status: number;
  json: unknown;
  text: string;
  ack: boolean;
  body: Buffer;
  headers: Record<string, string>;
}

/** Memory as upstream serialises it: None options omitted (skip_serializing_if). */
export function wireOf(mem: UpMemory): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mem)) if (v !== undefined && k !== 'seq') out[k] = v;
  return out;
}

export class UpstreamSender {
  constructor(
    readonly id: string,
    private readonly priv: Buffer | undefined,
    private readonly apiKey?: string,
  ) {}

  /** The exact request upstream would send (for tests that tamper with it). */
  build(body: Record<string, unknown>, opts: { idempotencyKey?: string; catchup?: boolean; nonce?: string } = {}): { body: Buffer; headers: Record<string, string> } {
    const raw = Buffer.from(rustJson(body, F64_KEYS), 'utf8');
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = Buffer.from(opts.idempotencyKey, 'utf8').toString('latin1');
    if (opts.catchup) headers['x-catchup'] = 'bulk';
    if (this.apiKey !== undefined) headers['x-api-key'] = this.apiKey;
    if (this.priv) {
      const nonce = opts.nonce ?? randomUUID();
      headers['x-memory-sig'] = signatureHeader(privateKeyObject(this.priv), postBytes(raw, nonce));
      headers['x-memory-nonce'] = nonce;
    }
    if (typeof body.sender_agent_id === 'string' && body.sender_agent_id !== '') headers['x-peer-id'] = body.sender_agent_id;
    return { body: raw, headers };
  }

  /** Sends a built request with node:http (raw header bytes, as reqwest sends them). */
  async send(baseUrl: string, req: { body: Buffer; headers: Record<string, string> }, expectedId?: string): Promise<SendResult> {
    const u = new URL('/api/v1/sync/push', baseUrl);
    return new Promise((resolve, reject) => {
      const r = request(u, { method: 'POST', headers: { ...req.headers, 'content-length': String(req.body.byteLength) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {
            /* a non-JSON body; upstream still counts a 2xx as an ack */
          }
          const status = res.statusCode ?? 0;
          const ids = json && typeof json === 'object' ? (json as { ids?: unknown }).ids : undefined;
          const drift = Array.isArray(ids) && ids.length > 0 && expectedId !== undefined && !ids.includes(expectedId);
          resolve({ status, json, text, ack: status >= 200 && status < 300 && !drift, body: req.body, headers: req.headers });
        });
      });
      r.on('error', reject);
      r.end(req.body);
    });
  }

  private envelope(lanes: Record<string, unknown>): Record<string, unknown> {
    return { sender_agent_id: this.id, memories: [], ...lanes, dry_run: false };
  }

  /** broadcast_store_quorum. */
  pushMemory(url: string, mem: UpMemory): Promise<SendResult> {
    return this.send(url, this.build(this.envelope({ memories: [wireOf(mem)] }), { idempotencyKey: mem.id }), mem.id);
  }
  /** broadcast_delete_quorum. */
  pushDeletion(url: string, id: string): Promise<SendResult> {
    return this.send(url, this.build(this.envelope({ deletions: [id] }), { idempotencyKey: id }), id);
  }
  /** broadcast_archive_quorum. */
  pushArchive(url: string, id: string): Promise<SendResult> {
    return this.send(url, this.build(this.envelope({ archives: [id] }), { idempotencyKey: id }), id);
  }
  /** broadcast_restore_quorum. */
  pushRestore(url: string, id: string): Promise<SendResult> {
    return this.send(url, this.build(this.envelope({ restores: [id] }), { idempotencyKey: id }), id);
  }
  /** broadcast_link_quorum (Idempotency-Key `<source>→<target>`). */
  pushLink(url: string, link: UpLink): Promise<SendResult> {
    const key = `${link.source_id}→${link.target_id}`;
    return this.send(url, this.build(this.envelope({ links: [link] }), { idempotencyKey: key }), key);
  }
  /** bulk_catchup_push: every row in one body, `X-Catchup: bulk`, no Idempotency-Key. */
  bulkCatchup(url: string, mems: UpMemory[]): Promise<SendResult> {
    return this.send(url, this.build(this.envelope({ memories: mems.map(wireOf) }), { catchup: true }));
  }
}
