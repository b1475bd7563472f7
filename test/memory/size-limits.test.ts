import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { AI_MEMORY_BODY_LIMIT, pushBodyBudget } from '../../src/federation/peers.js';
import { SINCE_PAGE_MAX_BYTES } from '../../src/federation/since.js';

/*
 * One memory at the largest MEMORY_MAX_BYTES must fit, with its envelope, everything that
 * carries it alone: a push body to an ai-memory 0.7 peer (2 MiB, less headroom), a push
 * body at the default PUSH_BATCH_MAX_BYTES and MAX_BATCH_BODY_BYTES, and a since page
 * (itself half the 8 MiB a memfed puller reads). So a page or batch of one row can always
 * be sent and read.
 */
describe('MEMORY_MAX_BYTES against the body and page limits', () => {
  const base = { NODE_ID: 'n', DATABASE_URL: 'postgres://x/y', LOG_LEVEL: 'silent' };
  const largest = loadConfig({ ...base, MEMORY_MAX_BYTES: '1048576' }).limits.memoryMaxBytes;

  it('accepts at most 1 MiB', () => {
    expect(largest).toBe(1024 * 1024);
    expect(() => loadConfig({ ...base, MEMORY_MAX_BYTES: String(1024 * 1024 + 1) })).toThrow(/MEMORY_MAX_BYTES/);
  });

  it('fits one memory at the largest cap, with room for its envelope, in every single-row carrier', () => {
    const envelope = 64 * 1024;
    const upstreamBudget = pushBodyBudget({ flavour: 'ai-memory-0.7' }, 48 * 1024 * 1024);
    expect(upstreamBudget).toBeLessThan(AI_MEMORY_BODY_LIMIT);
    expect(largest + envelope).toBeLessThanOrEqual(upstreamBudget);
    const defaults = loadConfig(base);
    expect(largest * 2).toBeLessThanOrEqual(defaults.push.batchMaxBytes);
    expect(largest * 2).toBeLessThanOrEqual(defaults.limits.maxBatchBodyBytes);
    expect(largest * 2).toBeLessThanOrEqual(SINCE_PAGE_MAX_BYTES);
    expect(SINCE_PAGE_MAX_BYTES * 2).toBeLessThanOrEqual(8 * 1024 * 1024);
  });
});
