import type { PeerStatus, StatusReport } from './report.js';

/** An age for people: `12s ago`, `5m ago`, `3h ago`, `2d ago`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** A duration without "ago" (lags): `0s`, `95s` -> `1m`. */
const formatSpan = (seconds: number) => formatAge(seconds).replace(' ago', '');

const ageOf = (iso: string | null, now: number) => (iso === null ? 'never' : formatAge((now - Date.parse(iso)) / 1000));

/** Columns padded to their widest cell; the last column is not padded. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

function streak(p: PeerStatus): string {
  const parts = [p.push.failureStreak > 0 ? `push ${p.push.failureStreak}` : '', p.pull.failureStreak > 0 ? `pull ${p.pull.failureStreak}` : ''].filter(Boolean);
  return parts.length > 0 ? parts.join(' ') : '0';
}

/** The more recent of the push and pull errors, on one line. */
function lastError(p: PeerStatus, now: number): string {
  const errors = [
    // A peer request error's message starts with its class (`[transient] POST ...`).
    { lane: 'push', at: p.push.lastErrorAt, text: p.push.lastError },
    { lane: 'pull', at: p.pull.lastErrorAt, text: p.pull.lastError },
  ].filter((e) => e.text !== null);
  if (errors.length === 0) return '-';
  const e = errors.reduce((a, b) => ((b.at ?? '') > (a.at ?? '') ? b : a));
  const text = e.text!.replace(/\s+/g, ' ');
  return `${e.lane} ${ageOf(e.at, now)}: ${text.length > 100 ? `${text.slice(0, 99)}…` : text}`;
}

/** `memfed status` for people: a table per peer and per queue, then the audit line. */
export function renderStatus(r: StatusReport): string {
  const now = Date.parse(r.generatedAt);
  const lines = [`node ${r.nodeId}, ${r.generatedAt}`, ''];
  if (r.peers.length === 0) lines.push('no peers configured');
  else {
    lines.push(
      ...table([
        ['PEER', 'STATE', 'PUSHED', 'PUSH LAG', 'PULLED', 'PULL LAG', 'DLQ PEND/QUAR', 'STREAK', 'LAST ERROR'],
        ...r.peers.map((p) => [
          p.id,
          p.state,
          ageOf(p.push.lastSuccessAt, now),
          p.push.lagChanges === 0 ? '0' : `${p.push.lagChanges} (${formatSpan(p.push.lagSeconds)})`,
          ageOf(p.pull.lastSuccessAt, now),
          p.pull.lagRows === 0 ? '0' : `${p.pull.lagRows} (${formatSpan(p.pull.lagSeconds)})`,
          `${p.dlq.pending}/${p.dlq.quarantined}`,
          streak(p),
          lastError(p, now),
        ]),
      ]),
    );
  }
  lines.push('');
  if (r.queues === null) lines.push(`queues: unavailable (${r.queuesError ?? 'unknown error'})`);
  else lines.push(...table([['QUEUE', 'WAITING', 'ACTIVE', 'DELAYED', 'FAILED', 'WORKERS'], ...r.queues.map((q) => [q.name, String(q.waiting), String(q.active), String(q.delayed), String(q.failed), String(q.workers)])]));
  lines.push('');
  const a = r.audit;
  const head = a.headSeq === 0 ? 'audit: empty chain' : `audit: head ${a.headSeq}${a.headHash ? ` (${a.headHash.slice(0, 12)})` : ''}`;
  const checkpoint = a.lastCheckpoint ? `last checkpoint ${a.lastCheckpoint.seq} ${ageOf(a.lastCheckpoint.at, now)}` : 'no checkpoint yet';
  const pending = [a.uncheckpointedAgeSeconds > 0 ? `oldest uncheckpointed entry ${formatAge(a.uncheckpointedAgeSeconds)}` : '', a.outboxStuck > 0 ? `${a.outboxStuck} outbox row(s) pending over 30s` : ''].filter(Boolean);
  lines.push([head, checkpoint, ...pending].join(', '));
  return lines.join('\n');
}
