import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { pushDlq } from '../db/schema.js';

export interface DeadLetter {
  peerId: string;
  memoryId: string;
  op: 'upsert' | 'delete';
  payload: unknown;
  failureClass: string;
  error: string;
}

/**
 * Records rows a peer refused. One pending row per (peer, memory): a later refusal of
 * the same memory refreshes the payload and error instead of adding a row.
 */
export async function deadLetter(db: Db, rows: DeadLetter[]): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insert(pushDlq)
    .values(rows.map((r) => ({ peerId: r.peerId, memoryId: r.memoryId, op: r.op, payload: r.payload, failureClass: r.failureClass, lastError: r.error.slice(0, 2000) })))
    .onConflictDoUpdate({
      target: [pushDlq.peerId, pushDlq.memoryId],
      targetWhere: sql`status = 'pending'`,
      set: { payload: sql`excluded.payload`, op: sql`excluded.op`, failureClass: sql`excluded.failure_class`, lastError: sql`excluded.last_error`, updatedAt: sql`now()` },
    });
}
