import { describe, expect, it } from 'vitest';
import { parseTestFaults, testFault } from '../../src/test-faults.js';

describe('MEMFED_TEST_FAULT (the broken-build switch)', () => {
  it('is refused outside NODE_ENV=test, so production cannot enable a fault by accident', () => {
    expect(() => parseTestFaults('drop-update-every-10', 'production')).toThrow(/test-only/);
    expect(() => parseTestFaults('cursor-before-ack', undefined)).toThrow(/test-only/);
  });

  it('refuses an unknown fault name instead of running a vacuous proof', () => {
    expect(() => parseTestFaults('drop-every-update', 'test')).toThrow(/unknown fault/);
  });

  it('parses a list of known faults under NODE_ENV=test, and is empty when unset', () => {
    expect([...parseTestFaults(' drop-update-every-10 , cursor-before-ack', 'test')].sort()).toEqual(['cursor-before-ack', 'drop-update-every-10']);
    expect(parseTestFaults(undefined, 'production').size).toBe(0);
    expect(parseTestFaults('', 'production').size).toBe(0);
  });

  // Skipped only during the broken-build proof, which sets the switch on purpose.
  it.skipIf(Boolean(process.env.MEMFED_TEST_FAULT))('is off in an ordinary test run (skipped while MEMFED_TEST_FAULT is set for the broken-build proof)', () => {
    expect(testFault('drop-update-every-10')).toBe(false);
    expect(testFault('cursor-before-ack')).toBe(false);
  });
});
