import { type JNode, parseJson } from './json.js';
import { parseMemoryValue } from './serde.js';
import type { RefusedRow } from './receiver.js';
import type { UpstreamStore } from './store.js';
import { validateMemory } from './validate.js';

/**
 * upstream's post-partition catch-up poller, one tick against one peer (federation/catchup.rs
 * of 0.7.0, catchup_once_with_store / catchup_once_legacy). Facts:
 * - `GET {base}/api/v1/sync/since?since=<pct>&peer=<local id>`, or `?peer=<local id>` while
 *   it has no watermark; no `limit` (the server's default 500); one page per tick, no paging;
 *   `since` percent-encoded byte-wise, unreserved `A-Za-z0-9-_.~` kept (urlencoding_encode);
 *   the local id is not encoded.
 * - Headers `x-agent-id: <local>`, `x-peer-id: <local>`, `x-api-key` when configured; never
 *   signed, no nonce.
 * - A non-2xx answer, an unparseable body or a body without a `memories` array skips the tick.
 * - Per row: serde_json::from_value::<Memory> (skip on error), validate_memory (skip), the
 *   watermark candidate is the greatest `updated_at` (string comparison) of the rows that
 *   passed validation, then insert_if_newer (an error is ignored; the watermark still moves).
 * - The watermark is sync_state(local id, peer id), advanced monotonically
 *   (sync_state_observe); push receipts observe under their X-Agent-Id, which upstream's
 *   senders do not send, so in practice only the poller moves it.
 */
export interface PollTarget {
  id: string;
  url: string;
}

export interface PollResult {
  url: string;
  status: number | 'unreachable';
  /** Why the tick was skipped, when it was. */
  skipped?: 'http' | 'unreachable' | 'unparseable_body' | 'no_memories';
  rows: number;
  applied: number;
  refused: Array<{ id: string; reason: string }>;
  /** The watermark after the tick. */
  watermark: string | undefined;
}

/** catchup.rs urlencoding_encode. */
export function urlencodingEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** catchup.rs sync_since_url. */
export function syncSinceUrl(base: string, localId: string, since: string | undefined): string {
  return since === undefined ? `${base}/api/v1/sync/since?peer=${localId}` : `${base}/api/v1/sync/since?since=${urlencodingEncode(since)}&peer=${localId}`;
}

/** serde_json::Value drops duplicate keys (last wins) before from_value sees the row. */
function dedupe(n: JNode): JNode {
  if (n.t === 'arr') return { t: 'arr', v: n.v.map(dedupe) };
  if (n.t === 'obj') return { t: 'obj', v: [...new Map(n.v.map(([k, v]) => [k, dedupe(v)] as [string, JNode]))] };
  return n;
}

export async function pollOnce(store: UpstreamStore, localId: string, target: PollTarget, opts: { apiKey?: string; refused?: RefusedRow[] } = {}): Promise<PollResult> {
  const since = store.lastSeen(localId, target.id);
  const url = syncSinceUrl(target.url.replace(/\/+$/, ''), localId, since);
  const result: PollResult = { url, status: 'unreachable', rows: 0, applied: 0, refused: [], watermark: since };
  const headers: Record<string, string> = { 'x-agent-id': localId, 'x-peer-id': localId };
  if (opts.apiKey !== undefined) headers['x-api-key'] = opts.apiKey;
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  } catch {
    return { ...result, skipped: 'unreachable' };
  }
  result.status = res.status;
  const raw = Buffer.from(await res.arrayBuffer());
  if (!res.ok) return { ...result, skipped: 'http' };
  let body: JNode;
  try {
    body = dedupe(parseJson(raw));
  } catch {
    return { ...result, skipped: 'unparseable_body' };
  }
  const memories = body.t === 'obj' ? body.v.find(([k]) => k === 'memories')?.[1] : undefined;
  if (!memories || memories.t !== 'arr') return { ...result, skipped: 'no_memories' };
  result.rows = memories.v.length;
  let latest: string | undefined;
  for (const rowNode of memories.v) {
    const parsed = parseMemoryValue(rowNode);
    const idOf = () => (rowNode.t === 'obj' ? String((rowNode.v.find(([k]) => k === 'id')?.[1] as { v?: unknown } | undefined)?.v ?? '?') : '?');
    if (!parsed.ok) {
      result.refused.push({ id: idOf(), reason: parsed.error });
      continue;
    }
    const v = validateMemory(parsed.mem, parsed.metadataNode);
    if (v) {
      result.refused.push({ id: parsed.mem.id, reason: v });
      continue;
    }
    if (latest === undefined || parsed.mem.updated_at > latest) latest = parsed.mem.updated_at;
    try {
      store.insertIfNewer(parsed.mem);
      result.applied++;
    } catch (e) {
      result.refused.push({ id: parsed.mem.id, reason: (e as Error).message });
    }
  }
  if (latest !== undefined) store.observe(localId, target.id, latest);
  for (const r of result.refused) opts.refused?.push({ lane: 'memories', id: r.id, reason: r.reason, via: 'poll' });
  result.watermark = store.lastSeen(localId, target.id);
  return result;
}
