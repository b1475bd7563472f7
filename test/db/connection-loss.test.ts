import { describe, expect, it } from 'vitest';
import { isDatabaseConnectionLoss } from '../../src/db/connection-loss.js';

describe('isDatabaseConnectionLoss', () => {
  it('recognises a server ending the session and postgres.js losing its socket', () => {
    expect(isDatabaseConnectionLoss(Object.assign(new Error('terminating connection due to administrator command'), { name: 'PostgresError', code: '57P01' }))).toBe(true);
    expect(isDatabaseConnectionLoss(Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).toBe(true);
    expect(isDatabaseConnectionLoss(Object.assign(new Error('write CONNECTION_CLOSED 127.0.0.1:5432'), { code: 'CONNECTION_CLOSED', address: ['127.0.0.1'], port: [5432] }))).toBe(true);
  });

  it('leaves everything else fatal: statement errors, other sockets, bugs', () => {
    expect(isDatabaseConnectionLoss(Object.assign(new Error('duplicate key'), { name: 'PostgresError', code: '23505' }))).toBe(false);
    expect(isDatabaseConnectionLoss(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(false);
    expect(isDatabaseConnectionLoss(new TypeError('x is undefined'))).toBe(false);
    expect(isDatabaseConnectionLoss('57P01')).toBe(false);
    expect(isDatabaseConnectionLoss(null)).toBe(false);
  });
});
