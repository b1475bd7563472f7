import { isDatabaseConnectionLoss } from './connection-loss.js';

/*
 * Postgres aborts one of two transactions that wait on each other's row locks
 * (deadlock_detected, 40P01) and, under SERIALIZABLE or REPEATABLE READ, one whose reads a
 * concurrent commit invalidated (serialization_failure, 40001). Either was rolled back
 * whole, so running it again is safe; Postgres's own advice is to retry.
 */
const CONFLICT = new Set(['40P01', '40001']);

/**
 * The error and the errors it wraps: drizzle wraps the driver's error as `cause`, and a
 * connect that tried every address of a host name fails with an AggregateError whose
 * `errors` are the attempts.
 */
function* causes(err: unknown, depth = 0): Generator<unknown> {
  if (err === null || typeof err !== 'object' || depth > 4) return;
  yield err;
  const { cause, errors } = err as { cause?: unknown; errors?: unknown };
  if (Array.isArray(errors)) for (const e of errors.slice(0, 8)) yield* causes(e, depth + 1);
  yield* causes(cause, depth + 1);
}

const isConflict = (e: unknown) => CONFLICT.has(String((e as { code?: unknown }).code));

/** Whether `err` (or what it wraps) is a transaction Postgres aborted for a lock or serialization conflict. */
export function isTransactionConflict(err: unknown): boolean {
  for (const e of causes(err)) if (isConflict(e)) return true;
  return false;
}

/** Whether `err` means the database cannot serve now (a lost connection, or a transaction it aborted for a conflict). */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const e of causes(err)) if (isDatabaseConnectionLoss(e) || isConflict(e)) return true;
  return false;
}

export const CONFLICT_ATTEMPTS = 5;

/**
 * Runs a transaction, again after a short random pause when Postgres aborted it for a
 * conflict (at most CONFLICT_ATTEMPTS in all); any other error, or the last conflict, is
 * thrown. `run` must be the whole transaction: nothing it did survives an abort.
 */
export async function retryOnConflict<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (attempt >= CONFLICT_ATTEMPTS || !isTransactionConflict(err)) throw err;
      // Jittered and growing, so the two transactions do not collide again in step.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** attempt));
    }
  }
}
