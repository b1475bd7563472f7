import { describe, expect, it } from 'vitest';
import { CONFLICT_ATTEMPTS, isDatabaseUnavailable, isTransactionConflict, retryOnConflict } from '../../src/db/conflicts.js';

const pgError = (code: string) => Object.assign(new Error(`postgres ${code}`), { name: 'PostgresError', code });
// drizzle wraps the driver's error: the SQLSTATE sits on `cause`.
const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: ...'), { cause });

describe('isTransactionConflict / isDatabaseUnavailable', () => {
  it('recognises deadlock and serialization failures, bare or wrapped', () => {
    expect(isTransactionConflict(pgError('40P01'))).toBe(true);
    expect(isTransactionConflict(wrapped(pgError('40001')))).toBe(true);
    expect(isTransactionConflict(wrapped(pgError('23505')))).toBe(false);
    expect(isTransactionConflict(new TypeError('bug'))).toBe(false);
    expect(isTransactionConflict(null)).toBe(false);
  });

  it('counts a lost connection (wrapped or not) and a conflict as the database being unavailable, nothing else', () => {
    expect(isDatabaseUnavailable(wrapped(pgError('57P01')))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', address: '127.0.0.1' }))).toBe(true);
    expect(isDatabaseUnavailable(pgError('40P01'))).toBe(true);
    // Every address of a host name refused: an AggregateError of the attempts, no address of its own.
    const attempt = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}:5432`), { code: 'ECONNREFUSED', address, port: 5432 });
    expect(isDatabaseUnavailable(Object.assign(new AggregateError([attempt('::1'), attempt('127.0.0.1')], ''), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isDatabaseUnavailable(wrapped(Object.assign(new Error('write CONNECT_TIMEOUT db:5432'), { code: 'CONNECT_TIMEOUT', address: 'db', port: 5432 })))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new AggregateError([new Error('x')], ''), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(isDatabaseUnavailable(wrapped(pgError('22P02')))).toBe(false);
    expect(isDatabaseUnavailable(new Error('plain'))).toBe(false);
  });
});

describe('retryOnConflict', () => {
  it('runs again after a conflict and returns the first success', async () => {
    let runs = 0;
    const result = await retryOnConflict(async () => {
      runs++;
      if (runs < 3) throw wrapped(pgError('40P01'));
      return 'done';
    });
    expect(result).toBe('done');
    expect(runs).toBe(3);
  });

  it('throws any other error at once, and a conflict that lasts past the attempts', async () => {
    let runs = 0;
    await expect(retryOnConflict(async () => (runs++, Promise.reject(pgError('23505'))))).rejects.toMatchObject({ code: '23505' });
    expect(runs).toBe(1);
    runs = 0;
    await expect(retryOnConflict(async () => (runs++, Promise.reject(pgError('40001'))))).rejects.toMatchObject({ code: '40001' });
    expect(runs).toBe(CONFLICT_ATTEMPTS);
  });
});
