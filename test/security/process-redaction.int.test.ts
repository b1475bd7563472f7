import { describe, expect, it } from 'vitest';
import { spawnMemfed } from '../helpers/process.js';

const BAD_ENV = {
  NODE_ID: 'redaction-node',
  DATABASE_URL: 'postgres://app:hunter2-db@db:notaport/memfed',
  REDIS_URL: 'redis://:s3cret-redis@r:99999',
  API_KEY: 'api-key-value-1',
  LOG_LEVEL: 'info',
};

describe('the memfed process never prints a URL password', () => {
  it.each([['all'], ['migrate']])('`memfed %s` with invalid URLs names the variables, not their passwords', async (command) => {
    const p = spawnMemfed([command], BAD_ENV);
    const code = await p.exited;
    const out = p.output();
    expect(code, out).not.toBe(0);
    expect(out).toContain('DATABASE_URL: not a URL');
    expect(out).toContain('REDIS_URL: not a URL');
    for (const secret of ['hunter2-db', 's3cret-redis', 'api-key-value-1']) expect(out).not.toContain(secret);
  });
});
