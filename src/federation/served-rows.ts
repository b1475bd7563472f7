import { createHash } from 'node:crypto';
import { ApiError, ValidationError } from '../errors.js';
import { MEMORY_TOO_LARGE } from '../memory/size.js';
import { isValidId, validateMemory, type Memory } from '../memory/model.js';
import type { CatchupRefusal } from '../store/catchup-refusals.js';
import { recordsetRow } from '../store/memories.js';

/** A served row as judged: the validated memory, or its permanent refusal. */
export type Judged = { memory: Memory } | { refusal: CatchupRefusal };

/** An id for a served row: its own when it has a valid one, else a digest of the row as served. */
export function servedId(raw: unknown): string {
  const id = (raw as { id?: unknown } | null)?.id;
  if (isValidId(id)) return id;
  return `sha256:${createHash('sha256').update(JSON.stringify(raw) ?? 'null').digest('hex').slice(0, 32)}`;
}

/** Validates a served row; a row that does not validate is a permanent refusal (never retried by itself). */
export function judge(peerId: string, raw: unknown, maxBytes: number | undefined): Judged {
  try {
    return { memory: validateMemory(raw, { ...(maxBytes !== undefined ? { maxBytes } : {}) }) };
  } catch (err) {
    const code = err instanceof ApiError && err.code === MEMORY_TOO_LARGE ? MEMORY_TOO_LARGE : err instanceof ValidationError ? 'VALIDATION' : 'UNPARSEABLE';
    return { refusal: { peerId, memoryId: servedId(raw), lane: 'memories', row: raw, code, reason: (err as Error).message.slice(0, 300) } };
  }
}

/**
 * The CPU work of a page's memories done ahead: each served row judged, and each valid
 * memory's recordset row (digest included) encoded, as the apply would do them. A page
 * fetched ahead is prepared as soon as it arrives, while the page before it is still in
 * the database, so the apply that follows only waits on the database. Both are pure
 * functions of the served row: using them changes no outcome, only when the work is done.
 */
export interface PreparedRows {
  /** By the served (parsed) row object. */
  judged: ReadonlyMap<unknown, Judged>;
  /** By the validated memory object (never changed after validation). */
  encoded: ReadonlyMap<Memory, string>;
}

export const NOTHING_PREPARED: PreparedRows = { judged: new Map(), encoded: new Map() };

export function prepareRows(peerId: string, rows: unknown, maxBytes: number | undefined): PreparedRows {
  const judged = new Map<unknown, Judged>();
  const encoded = new Map<Memory, string>();
  if (!Array.isArray(rows)) return { judged, encoded };
  for (const raw of rows) {
    const j = judge(peerId, raw, maxBytes);
    judged.set(raw, j);
    if ('memory' in j) encoded.set(j.memory, recordsetRow(j.memory));
  }
  return { judged, encoded };
}

/** The judgement of a served row: the prepared one, else made now. */
export const judgeServed = (prepared: PreparedRows, peerId: string, raw: unknown, maxBytes: number | undefined): Judged => prepared.judged.get(raw) ?? judge(peerId, raw, maxBytes);
