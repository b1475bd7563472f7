import { describe, expect, it } from 'vitest';
import { formatAge, renderStatus } from '../../src/status/render.js';
import type { PeerStatus, StatusReport } from '../../src/status/report.js';

const NOW = '2026-12-03T12:00:00.000Z';
const ago = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString();

function peer(over: { id: string; state: PeerStatus['state']; push?: Partial<PeerStatus['push']>; pull?: Partial<PeerStatus['pull']>; dlq?: PeerStatus['dlq'] }): PeerStatus {
  return {
    id: over.id,
    url: `http://${over.id}`,
    state: over.state,
    push: { lastSuccessAt: ago(12), lagChanges: 0, lagSeconds: 0, failureStreak: 0, lastError: null, lastErrorClass: null, lastErrorAt: null, retryAt: null, ...over.push },
    pull: { lastPullAt: ago(20), lastSuccessAt: ago(20), lagRows: 0, lagSeconds: 0, failureStreak: 0, lastError: null, lastErrorAt: null, ...over.pull },
    dlq: over.dlq ?? { pending: 0, quarantined: 0 },
  };
}

const report = (over: Partial<StatusReport> = {}): StatusReport => ({
  nodeId: 'node-a',
  generatedAt: NOW,
  peers: [
    peer({ id: 'b', state: 'active' }),
    peer({
      id: 'c-long-name',
      state: 'failing',
      push: { lastSuccessAt: ago(3700), lagChanges: 42, lagSeconds: 95, failureStreak: 3, lastError: '[transient] POST /api/v1/sync/push to c: connect ECONNREFUSED\n127.0.0.1:9', lastErrorClass: 'transient', lastErrorAt: ago(4) },
      pull: { lastSuccessAt: null, failureStreak: 1, lastError: 'HTTP 503', lastErrorAt: ago(30) },
      dlq: { pending: 2, quarantined: 1 },
    }),
  ],
  queues: [
    { name: 'push', waiting: 1, active: 0, delayed: 1, failed: 0, workers: 1 },
    { name: 'audit', waiting: 0, active: 0, delayed: 0, failed: 7, workers: 0 },
  ],
  queuesError: null,
  audit: { headSeq: 120, headHash: 'abcdef0123456789abcdef', lastCheckpoint: { seq: 100, at: ago(300) }, uncheckpointedAgeSeconds: 61, outboxStuck: 0 },
  ...over,
});

describe('status rendering', () => {
  it('writes ages the way people read them', () => {
    expect([0, 12.9, 59, 60, 3599, 3600, 86_399, 86_400 * 3].map(formatAge)).toEqual(['0s ago', '12s ago', '59s ago', '1m ago', '59m ago', '1h ago', '23h ago', '3d ago']);
    expect(formatAge(-5)).toBe('0s ago');
  });

  it('shows one aligned row per peer with state, ages, lags, DLQ, streak and the newest error on one line', () => {
    const lines = renderStatus(report()).split('\n');
    expect(lines[0]).toBe(`node node-a, ${NOW}`);
    const header = lines[2]!;
    const b = lines[3]!;
    const c = lines[4]!;
    expect(header.startsWith('PEER         STATE    PUSHED')).toBe(true);
    expect(b.split(/\s{2,}/)).toEqual(['b', 'active', '12s ago', '0', '20s ago', '0', '0/0', '0', '-']);
    // The push error is newer than the pull error, so it is the one shown; newlines folded.
    expect(c.split(/\s{2,}/)).toEqual(['c-long-name', 'failing', '1h ago', '42 (1m)', 'never', '0', '2/1', 'push 3 pull 1', 'push 4s ago: [transient] POST /api/v1/sync/push to c: connect ECONNREFUSED 127.0.0.1:9']);
    // Columns line up under their headers.
    expect(b.indexOf('12s ago')).toBe(header.indexOf('PUSHED'));
    expect(c.indexOf('2/1')).toBe(header.indexOf('DLQ PEND/QUAR'));
  });

  it('shows the pull error when it is the newer one', () => {
    const r = report({ peers: [peer({ id: 'b', state: 'failing', push: { failureStreak: 1, lastError: 'old', lastErrorClass: 'transient', lastErrorAt: ago(100) }, pull: { failureStreak: 2, lastError: 'HTTP 500', lastErrorAt: ago(5) } })] });
    expect(renderStatus(r)).toContain('pull 5s ago: HTTP 500');
  });

  it('lists the queues with their workers and ends with the audit line', () => {
    const lines = renderStatus(report()).split('\n');
    const q = lines.indexOf(lines.find((l) => l.startsWith('QUEUE'))!);
    expect(lines[q]!.split(/\s{2,}/)).toEqual(['QUEUE', 'WAITING', 'ACTIVE', 'DELAYED', 'FAILED', 'WORKERS']);
    expect(lines[q + 1]!.split(/\s+/)).toEqual(['push', '1', '0', '1', '0', '1']);
    expect(lines[q + 2]!.split(/\s+/)).toEqual(['audit', '0', '0', '0', '7', '0']);
    expect(lines.at(-1)).toBe('audit: head 120 (abcdef012345), last checkpoint 100 5m ago, oldest uncheckpointed entry 1m ago');
  });

  it('still reports peers and audit when the queues could not be read', () => {
    const out = renderStatus(report({ queues: null, queuesError: 'Connection is closed.', audit: { headSeq: 0, headHash: null, lastCheckpoint: null, uncheckpointedAgeSeconds: 0, outboxStuck: 2 } }));
    expect(out).toContain('queues: unavailable (Connection is closed.)');
    expect(out).toContain('c-long-name');
    expect(out.split('\n').at(-1)).toBe('audit: empty chain, no checkpoint yet, 2 outbox row(s) pending over 30s');
  });

  it('says so when no peer is configured', () => {
    expect(renderStatus(report({ peers: [] }))).toContain('no peers configured');
  });
});
