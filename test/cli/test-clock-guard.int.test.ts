import { describe, expect, it } from 'vitest';
import { REDIS_URL } from '../helpers/env.js';
import { newKeyDir } from '../helpers/node.js';
import { spawnMemfed } from '../helpers/process.js';

// MEMFED_TEST_CLOCK_SKEW_MS is refused where it could shift a production clock: the real
// process stops at start-up, before it opens anything.
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<string>((r) => setTimeout(() => r('still running'), ms))]);
const env = () => ({ NODE_ID: 'clock-guard', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', REDIS_URL, FED_KEY_DIR: newKeyDir(), LOG_LEVEL: 'info' });

describe('the test-only clock skew switch at start-up', () => {
  for (const [name, extra] of [
    ['outside NODE_ENV=test', { NODE_ENV: 'production', MEMFED_TEST_CLOCK_SKEW_MS: '180000' }],
    ['with NODE_ENV unset', { MEMFED_TEST_CLOCK_SKEW_MS: '-180000' }],
  ] as const) {
    it(`stops the process ${name}`, async () => {
      const p = spawnMemfed(['api'], { ...env(), ...extra });
      const code = await within(p.exited, 30_000);
      if (code === 'still running') p.signal('SIGKILL');
      expect(code).not.toBe(0);
      expect(code).not.toBe('still running');
      expect(p.output()).toMatch(/MEMFED_TEST_CLOCK_SKEW_MS is a test-only switch and is refused unless NODE_ENV=test/);
    });
  }

  it('stops the process on a value that is not a signed integer of milliseconds, even under NODE_ENV=test', async () => {
    const p = spawnMemfed(['api'], { ...env(), NODE_ENV: 'test', MEMFED_TEST_CLOCK_SKEW_MS: '3min' });
    const code = await within(p.exited, 30_000);
    if (code === 'still running') p.signal('SIGKILL');
    expect(code).not.toBe(0);
    expect(p.output()).toMatch(/not a signed integer of milliseconds/);
  });
});
