import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { PeerRequestError } from '../../src/federation/client.js';
import { ExpectedUnrecoverable, backoffStrategy, completedAttemptLine, failedAttemptLine, isExpectedFailure, planAfterFailure } from '../../queues/worker.js';

const NOW = Date.parse('2026-12-03T10:58:00.000Z');
const job = (attemptsMade: number, attempts = 8) => ({ attemptsMade, opts: { attempts } });
const AFTER = 'the reconciler re-enqueues the peer; its cursor has not moved';
const http500 = () => new PeerRequestError('transient', 'POST /api/v1/sync/push to b: HTTP 500 oops', 500);

describe('the job-log line of an attempt', () => {
  it('names the attempt of how many, the classified error, the next try and what follows the last', () => {
    const line = failedAttemptLine(job(2), http500(), { retry: true, delayMs: 12_400 }, AFTER, NOW);
    expect(line).toBe(`attempt 3/8 failed: [transient] POST /api/v1/sync/push to b: HTTP 500 oops | next try in 12 s (at 10:58:12 UTC) | after attempt 8/8: ${AFTER}`);
    expect(failedAttemptLine(job(0), http500(), { retry: true, delayMs: 450 }, AFTER, NOW)).toContain('next try in 0.5 s (at 10:58:00 UTC)');
  });

  it('says when an attempt was the last, or was not retried because it cannot succeed', () => {
    expect(failedAttemptLine(job(7), http500(), { retry: false, unrecoverable: false }, AFTER, NOW)).toBe(`attempt 8/8 failed: [transient] POST /api/v1/sync/push to b: HTTP 500 oops | that was the last attempt: ${AFTER}`);
    const refused = new ExpectedUnrecoverable('[unenrolled] POST /api/v1/sync/push to b: HTTP 401 no');
    expect(failedAttemptLine(job(0), refused, { retry: false, unrecoverable: true }, AFTER, NOW)).toBe(`attempt 1/8 failed: [unenrolled] POST /api/v1/sync/push to b: HTTP 401 no | not retried (unrecoverable): ${AFTER}`);
    expect(failedAttemptLine(job(0, 1), new Error('x'), { retry: false, unrecoverable: false }, undefined, NOW)).toMatch(/\| that was the last attempt: nothing more is done$/);
  });

  it('marks an unexpected error as such, on one line, and points to its stack', () => {
    const err = new Error('connection terminated\nunexpectedly');
    expect(failedAttemptLine(job(0, 5), err, { retry: false, unrecoverable: false }, 'x', NOW)).toBe('attempt 1/5 failed: [unexpected] Error: connection terminated unexpectedly (stack in the Error tab) | that was the last attempt: x');
  });

  it('counts a completed attempt the same way', () => {
    expect(completedAttemptLine(job(2), 340)).toBe('attempt 3/8 completed in 0.3 s');
    expect(completedAttemptLine({ attemptsMade: 0, opts: {} }, 12_000)).toBe('attempt 1/1 completed in 12 s');
  });
});

describe('the plan after a failed attempt', () => {
  it('retries until the last attempt, with the delay the backoff strategy then applies', () => {
    const err = http500();
    const plan = planAfterFailure(job(2), err);
    expect(plan).toMatchObject({ retry: true });
    expect(plan.retry && backoffStrategy(3, 'peer', err)).toBe(plan.retry && plan.delayMs);
    expect(planAfterFailure(job(7), err)).toEqual({ retry: false, unrecoverable: false });
    expect(planAfterFailure(job(0), new UnrecoverableError('no'))).toEqual({ retry: false, unrecoverable: true });
    expect(planAfterFailure(job(0), new ExpectedUnrecoverable('no'))).toEqual({ retry: false, unrecoverable: true });
  });

  it('takes a peer error and a refused identity as expected failures, anything else not', () => {
    expect(isExpectedFailure(http500())).toBe(true);
    expect(isExpectedFailure(new ExpectedUnrecoverable('[unenrolled] x'))).toBe(true);
    expect(new ExpectedUnrecoverable('[unenrolled] x').stack).toBe('[unenrolled] x');
    expect(isExpectedFailure(new UnrecoverableError('x'))).toBe(false);
    expect(isExpectedFailure(new Error('x'))).toBe(false);
  });
});
