import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { ApiError, ValidationError } from '../errors.js';
import { MEMORY_TOO_LARGE } from '../memory/size.js';
import type { Logger } from '../logger.js';
import { memoryDigest, validateId, type Memory } from '../memory/model.js';
import { formatTimestamp, parseTimestamp } from '../memory/time.js';
import { listRefusals, refuseAgain, resolveRefusal, type RefusalRow, type RefusalSelector } from '../store/catchup-refusals.js';
import type { Tombstone } from '../store/replica.js';
import { validateMemory } from '../memory/model.js';
import { applyFromPeer, type ReceiveDeps } from './receive.js';

export interface ReapplyResult {
  taken: number;
  applied: number;
  /** A newer version was already here (LWW): nothing to apply, the refusal is resolved. */
  superseded: number;
  /** Refused again (the rule still refuses it): still pending, attempts+1. */
  refused: number;
}

/** A stored refusal's row back in apply form, or the reason it is still refused. */
function parseStored(r: RefusalRow, maxBytes: number | undefined): { memories: Memory[]; tombstones: Tombstone[] } | { code: string; reason: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(r.row);
  } catch {
    return { code: 'UNPARSEABLE', reason: 'the stored row is not JSON' };
  }
  try {
    if (r.lane === 'tombstones') {
      const t = raw as { id?: unknown; deleted_at?: unknown } | null;
      const at = parseTimestamp(t?.deleted_at);
      if (at === null) throw new ValidationError('deleted_at', 'must be an RFC 3339 timestamp');
      return { memories: [], tombstones: [{ id: validateId(t?.id), deleted_at: formatTimestamp(at) }] };
    }
    return { memories: [validateMemory(raw, { ...(maxBytes !== undefined ? { maxBytes } : {}) })], tombstones: [] };
  } catch (err) {
    return { code: err instanceof ApiError && err.code === MEMORY_TOO_LARGE ? MEMORY_TOO_LARGE : err instanceof ValidationError ? 'VALIDATION' : 'UNPARSEABLE', reason: (err as Error).message.slice(0, 300) };
  }
}

/**
 * Re-applies pending catch-up refusals (oldest first, up to `limit`) through the same path
 * as a pull: validation, admission (future timestamps, governance as configured now), then
 * the LWW apply, so a newer version already here wins. An admitted row is resolved in the
 * applying transaction (`applied`, or `superseded` when the stored version is another);
 * a row still refused stays pending with attempts+1 and the new reason.
 */
export async function reapplyRefusals(deps: ReceiveDeps & { logger: Logger; memoryMaxBytes?: number }, sel: RefusalSelector, limit = 1000): Promise<ReapplyResult> {
  const rows = await listRefusals(deps.db, { ...sel, status: 'pending', limit, offset: 0 });
  const out: ReapplyResult = { taken: rows.length, applied: 0, superseded: 0, refused: 0 };
  for (const r of rows) {
    const parsed = parseStored(r, deps.memoryMaxBytes);
    if ('code' in parsed) {
      await refuseAgain(deps.db, r.id, parsed.code, parsed.reason);
      out.refused++;
      deps.metrics.catchupReapplies.inc({ peer: r.peerId, outcome: 'refused' });
      continue;
    }
    let outcome: 'applied' | 'superseded' | 'refused' = 'refused';
    await applyFromPeer(deps, r.peerId, 'catchup', parsed, {
      inTransaction: async (tx, refused) => {
        if (refused.length > 0) {
          await refuseAgain(tx, r.id, refused[0]!.code, refused[0]!.reason);
          outcome = 'refused';
          return;
        }
        outcome = (await storedIsThis(tx, parsed)) ? 'applied' : 'superseded';
        await resolveRefusal(tx, r.id, outcome);
      },
    });
    out[outcome]++;
    deps.metrics.catchupReapplies.inc({ peer: r.peerId, outcome });
  }
  if (out.taken > 0) deps.logger.info({ ...out, ...sel }, 'catch-up refusals re-applied');
  return out;
}

/** Whether the stored version (in this transaction, after the LWW apply) is the re-applied row. */
async function storedIsThis(tx: Tx, rows: { memories: Memory[]; tombstones: Tombstone[] }): Promise<boolean> {
  const m = rows.memories[0];
  if (m) {
    const [s] = await tx.execute<{ digest: string; deleted: boolean }>(sql`SELECT digest, deleted_at IS NOT NULL AS deleted FROM memories WHERE id = ${m.id}`);
    return !!s && !s.deleted && s.digest === memoryDigest(m);
  }
  const t = rows.tombstones[0]!;
  const [s] = await tx.execute<{ same: boolean }>(sql`SELECT deleted_at = ${t.deleted_at}::timestamptz AS same FROM memories WHERE id = ${t.id}`);
  return !!s?.same;
}
