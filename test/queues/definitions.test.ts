import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { PeerRequestError } from '../../src/federation/client.js';
import { QUEUE_NAMES } from '../../src/queue-names.js';
import { catchupDedupId, catchupSchedulerId } from '../../queues/catchup.js';
import { repairSchedulerId } from '../../queues/repair.js';
import { jobName, queuePrefixFor, safeKey } from '../../queues/definition.js';
import { dlqDedupId } from '../../queues/dlq.js';
import { pushDedupId } from '../../queues/push.js';
import { QUEUE_DEFINITIONS } from '../../queues/registry.js';
import { backoffStrategy } from '../../queues/worker.js';

describe('queue definitions', () => {
  it('define every queue name once, under its own name', () => {
    expect(Object.keys(QUEUE_DEFINITIONS).sort()).toEqual([...QUEUE_NAMES].sort());
    for (const name of QUEUE_NAMES) expect(QUEUE_DEFINITIONS[name].name).toBe(name);
  });

  it('take their concurrency from config, and the audit queue is one at a time everywhere', () => {
    const config = loadConfig({ PUSH_CONCURRENCY: '3', DLQ_CONCURRENCY: '4', CATCHUP_CONCURRENCY: '5' });
    expect(QUEUE_DEFINITIONS.push.concurrency(config)).toBe(3);
    expect(QUEUE_DEFINITIONS.dlq.concurrency(config)).toBe(4);
    expect(QUEUE_DEFINITIONS.catchup.concurrency(config)).toBe(5);
    expect(QUEUE_DEFINITIONS.audit.concurrency(config)).toBe(1);
    expect(QUEUE_DEFINITIONS.audit.globalConcurrency).toBe(1);
    for (const name of ['push', 'dlq', 'catchup'] as const) expect(QUEUE_DEFINITIONS[name].globalConcurrency).toBeUndefined();
  });

  it('retry pushes and audit appends with the shared backoff, and leave dlq and catch-up to their ticks', () => {
    expect(QUEUE_DEFINITIONS.push.jobOptions).toMatchObject({ attempts: 8, backoff: { type: 'peer' } });
    expect(QUEUE_DEFINITIONS.audit.jobOptions).toMatchObject({ attempts: 5, backoff: { type: 'peer' } });
    expect(QUEUE_DEFINITIONS.dlq.jobOptions.attempts).toBe(1);
    expect(QUEUE_DEFINITIONS.catchup.jobOptions.attempts).toBe(1);
    for (const name of QUEUE_NAMES) expect(QUEUE_DEFINITIONS[name].jobOptions.removeOnFail).toBeDefined();
  });

  it('build job, dedup and scheduler ids without the key separator, one per peer', () => {
    const peers = ['host:a', 'host:b', 'a@b.c', 'x'];
    const ids = peers.flatMap((p) => [pushDedupId(p), catchupDedupId(p), catchupSchedulerId(p), dlqDedupId(p), repairSchedulerId(p)]);
    for (const id of [...ids, dlqDedupId()]) expect(id).not.toContain(':');
    expect(new Set(ids).size).toBe(ids.length);
    expect(Buffer.from(safeKey('host:a'), 'base64url').toString()).toBe('host:a');
  });

  it('name jobs <queue>.<job>, with the peer after a space when a job serves one', () => {
    expect(jobName('push.deliver', 'host:b')).toBe('push.deliver host:b');
    expect(jobName('dlq.replay')).toBe('dlq.replay');
  });
});

describe('backoff', () => {
  it("honours a peer's Retry-After", () => {
    const err = new PeerRequestError('throttle', 'POST /x: HTTP 429', 429, 7_000);
    expect(backoffStrategy(3, 'peer', err)).toBe(7_000);
  });

  it('doubles from 500 ms, capped at 60 s, jittered within the upper half', () => {
    for (const [attempts, base] of [[1, 500], [2, 1000], [3, 2000], [8, 60_000], [20, 60_000]] as const) {
      for (let i = 0; i < 50; i++) {
        const d = backoffStrategy(attempts);
        expect(d).toBeGreaterThanOrEqual(base / 2);
        expect(d).toBeLessThanOrEqual(base);
      }
    }
  });
});

describe('queue prefixes', () => {
  it('puts the queue name inside a hash tag, so each queue has a slot of its own on a cluster', () => {
    expect(QUEUE_NAMES.map((q) => queuePrefixFor('{mf-a}', q))).toEqual(['{mf-a:push}', '{mf-a:dlq}', '{mf-a:catchup}', '{mf-a:audit}', '{mf-a:expiry}', '{mf-a:retention}', '{mf-a:repair}']);
    expect(queuePrefixFor('node-{mf-a}-x', 'push')).toBe('node-{mf-a:push}-x');
  });

  it('keeps a plain prefix as it is (the key names of a single Redis do not change)', () => {
    expect(queuePrefixFor('mf-a', 'push')).toBe('mf-a');
  });
});
