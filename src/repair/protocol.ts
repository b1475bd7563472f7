import { z } from 'zod';
import { isValidId } from '../memory/model.js';
import { BUCKET_PREFIX, HASH_HEX_LEN } from '../store/repair-digests.js';

/*
 * POST /api/v1/sync/repair (docs/wire.md, Anti-entropy repair): one signed request body,
 * three operations. Every bound here is what a server answers at most, so a hostile peer
 * cannot make one request cost more than a bounded scan.
 */

export const REPAIR_PATH = '/api/v1/sync/repair';
/** Request body cap: 4,096 prefixes or 1,000 ids fit well inside it. */
export const REPAIR_BODY_MAX_BYTES = 512 * 1024;
export const MAX_PREFIXES = 4096;
export const MAX_DEPTH = 3;
/** Buckets one `digests` answer may list (prefixes x 16^depth). */
export const MAX_BUCKETS = 65_536;
/** Row keys one `keys` answer may list; a wider range is refused (ask for narrower buckets). */
export const MAX_KEYS = 20_000;
export const MAX_IDS = 1000;
/** Byte budget of a `rows` answer (well below the 8 MiB a client accepts); the rest is listed in `more`. */
export const ROWS_MAX_BYTES = 4 * 1024 * 1024;

const prefixes = z.array(z.string().regex(BUCKET_PREFIX)).min(1).max(MAX_PREFIXES);
const envelope = { sender_agent_id: z.string().min(1), recipient: z.string().min(1) };

export const repairRequest = z.discriminatedUnion('op', [
  z.object({ ...envelope, op: z.literal('digests'), prefixes, depth: z.number().int().min(1).max(MAX_DEPTH) }).strict(),
  z.object({ ...envelope, op: z.literal('keys'), prefixes }).strict(),
  z.object({ ...envelope, op: z.literal('rows'), ids: z.array(z.string().refine(isValidId, 'not a valid memory id')).min(1).max(MAX_IDS) }).strict(),
]);

export type RepairRequest = z.infer<typeof repairRequest>;

/** The checks a schema cannot say: prefixes of one length, within the id hash, a bounded answer. */
export function repairRequestProblem(req: RepairRequest): string | null {
  if (req.op === 'rows') return null;
  const len = req.prefixes[0]!.length;
  if (req.prefixes.some((p) => p.length !== len)) return 'prefixes: all of one length';
  if (new Set(req.prefixes).size !== req.prefixes.length) return 'prefixes: duplicates';
  if (req.op === 'digests') {
    if (len + req.depth > HASH_HEX_LEN) return `depth: prefix length + depth must not exceed ${HASH_HEX_LEN}`;
    if (req.prefixes.length * 16 ** req.depth > MAX_BUCKETS) return `prefixes x 16^depth must not exceed ${MAX_BUCKETS}`;
  }
  return null;
}

/** Answers, as served. */
export interface DigestsAnswer {
  /** Non-empty buckets only: [prefix, count, xor hash]. */
  buckets: Array<[string, number, string]>;
}
export interface KeysAnswer {
  /** [id, LWW time in microseconds, 1 for a tombstone else 0, content digest ('' for a tombstone)]. */
  keys: Array<[string, string, 0 | 1, string]>;
}
