/**
 * A federation peer as configured: its agent id, base URL and flavour (what kind of node
 * it is), plus the facts derived from the flavour. One parser and one validation for every
 * source of peers: `FED_PEERS` at start-up (src/config.ts) and, later, runtime peer
 * management, so a peer is accepted or refused the same way wherever it comes from.
 *
 * No imports from config.ts (config.ts imports this module).
 */

/** The kinds of node memfed federates with (docs/wire.md, Peer flavours). */
export const PEER_FLAVOURS = ['memfed', 'ai-memory-0.7'] as const;
export type PeerFlavour = (typeof PEER_FLAVOURS)[number];
export const DEFAULT_FLAVOUR: PeerFlavour = 'memfed';

/** A configured peer. */
export interface PeerSpec {
  id: string;
  url: string;
  flavour: PeerFlavour;
}

/** What a flavour implies for the traffic with such a peer. */
export interface FlavourTraits {
  /**
   * The largest request body the peer accepts, in bytes (null: no limit of its own beyond
   * memfed's `PUSH_BATCH_MAX_BYTES`). Push and DLQ replay batches are sized under it.
   */
  requestBodyLimit: number | null;
  /** The peer's catch-up poller never signs `GET /sync/since`: accept its unsigned pulls. */
  unsignedSincePulls: boolean;
  /** The peer answers anti-entropy repair (POST /api/v1/sync/repair); upstream has no such endpoint. */
  antiEntropy: boolean;
}

/** upstream src/lib.rs: the router's `DefaultBodyLimit::max(2 * 1024 * 1024)` (a larger body is 413). */
export const AI_MEMORY_BODY_LIMIT = 2 * 1024 * 1024;
/**
 * Headroom kept below a peer's body limit: the batch sizing counts body bytes exactly,
 * this is a margin against any future envelope key, not a fudge for the estimate.
 */
const BODY_LIMIT_HEADROOM = 16 * 1024;

const TRAITS: Record<PeerFlavour, FlavourTraits> = {
  memfed: { requestBodyLimit: null, unsignedSincePulls: false, antiEntropy: true },
  // upstream src/federation catch-up poller (catchup_once_with_store / sync_since_url): a
  // plain GET ?since=&peer= with x-agent-id, x-peer-id and (when configured) x-api-key; never signed.
  'ai-memory-0.7': { requestBodyLimit: AI_MEMORY_BODY_LIMIT, unsignedSincePulls: true, antiEntropy: false },
};

/** The traits of a flavour; a peer without one is a memfed peer. */
export const flavourTraits = (flavour: PeerFlavour | undefined): FlavourTraits => TRAITS[flavour ?? DEFAULT_FLAVOUR];

/**
 * The byte budget of one push body to `peer`: memfed's configured cap, and for a peer
 * with a body limit of its own, under that limit (docs/wire.md, Body limits).
 */
export function pushBodyBudget(peer: { flavour?: PeerFlavour }, configuredMaxBytes: number): number {
  const limit = flavourTraits(peer.flavour).requestBodyLimit;
  return limit === null ? configuredMaxBytes : Math.min(configuredMaxBytes, limit - BODY_LIMIT_HEADROOM);
}

// Peer ids name key files (<id>.pub), so no '/'.
export const PEER_ID = /^[A-Za-z0-9_\-:@.]{1,128}$/;

export type PeerSpecResult = { ok: true; peer: PeerSpec } | { ok: false; problem: string };

const isFlavour = (v: string): v is PeerFlavour => (PEER_FLAVOURS as readonly string[]).includes(v);

/** Validates a peer given as fields (what a runtime API would receive). */
export function peerSpecFrom(fields: { id: string; url: string; flavour?: string }, what = `peer "${fields.id}"`): PeerSpecResult {
  const id = fields.id.trim();
  if (!PEER_ID.test(id)) return { ok: false, problem: `bad peer entry ${what}: expected id=url with id of [A-Za-z0-9_-:@.]` };
  const url = fields.url.trim().replace(/\/+$/, '');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
  } catch {
    return { ok: false, problem: `bad peer URL in ${what}` };
  }
  const flavour = fields.flavour === undefined ? DEFAULT_FLAVOUR : fields.flavour.trim();
  if (!isFlavour(flavour)) return { ok: false, problem: `unknown flavour "${flavour}" in ${what} (known: ${PEER_FLAVOURS.join(', ')})` };
  return { ok: true, peer: { id, url, flavour } };
}

/**
 * One `FED_PEERS` entry: `id=url[;key=value...]`. The first '=' ends the id (an id may hold
 * ':' but never '='); ';' separates the URL from the options. Options: `flavour`.
 */
export function parsePeerSpec(entry: string): PeerSpecResult {
  const part = entry.trim();
  const eq = part.indexOf('=');
  if (eq <= 0) return { ok: false, problem: `bad peer entry "${part}": expected id=url with id of [A-Za-z0-9_-:@.]` };
  const [url = '', ...options] = part.slice(eq + 1).split(';');
  const fields: { id: string; url: string; flavour?: string } = { id: part.slice(0, eq), url };
  const seen = new Set<string>();
  for (const raw of options.map((o) => o.trim()).filter(Boolean)) {
    const oeq = raw.indexOf('=');
    const key = oeq > 0 ? raw.slice(0, oeq).trim() : raw;
    const value = oeq > 0 ? raw.slice(oeq + 1).trim() : '';
    if (key !== 'flavour') return { ok: false, problem: `unknown option "${key}" in peer entry "${part}" (known: flavour)` };
    if (oeq <= 0 || value === '') return { ok: false, problem: `option "${key}" needs a value in peer entry "${part}"` };
    if (seen.has(key)) return { ok: false, problem: `option "${key}" given twice in peer entry "${part}"` };
    seen.add(key);
    fields.flavour = value;
  }
  return peerSpecFrom(fields, `"${part}"`);
}

/** `FED_PEERS`: entries separated by ','; every problem listed, duplicates refused. */
export function parsePeerList(value: string | undefined): { peers: PeerSpec[]; problems: string[] } {
  const peers: PeerSpec[] = [];
  const problems: string[] = [];
  if (!value || value.trim() === '') return { peers, problems };
  for (const entry of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const r = parsePeerSpec(entry);
    if (!r.ok) {
      problems.push(r.problem);
      continue;
    }
    if (peers.some((p) => p.id === r.peer.id)) {
      problems.push(`peer "${r.peer.id}" listed twice`);
      continue;
    }
    peers.push(r.peer);
  }
  return { peers, problems };
}
