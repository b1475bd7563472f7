import type { Db } from './db/client.js';
import type { Metrics } from './metrics.js';
import { auditFigures } from './store/audit.js';
import { dlqStats } from './store/dlq.js';
import { refusalStats } from './store/catchup-refusals.js';
import { catchupLagSeconds, watermarkTimes } from './store/watermarks.js';
import { listCursors, peerLag } from './store/cursors.js';
import { tombstoneCount } from './store/expiry.js';
import { FEED_START } from './store/feed.js';
import { behindHorizon, feedFigures, positionGaugeValue } from './store/retention.js';
import type { RefusalBreaker } from './federation/refusal-breaker.js';
import { now } from './clock.js';

/** The peers to report: a fixed list, or the runtime peer list read at each scrape. */
type ReportedPeers = string[] | (() => string[]);

/**
 * The peer ids to report at a scrape; at each scrape the series of `gauges` of a peer no
 * longer among them (removed at runtime) are dropped, not frozen at a last value.
 */
function followReportedPeers(metrics: Metrics, peers: ReportedPeers, gauges: ReadonlyArray<{ remove(labels: { peer: string }): void }>): () => string[] {
  const ids = () => (typeof peers === 'function' ? peers() : peers);
  let reported = new Set<string>();
  metrics.onScrape(async () => {
    const now = new Set(ids());
    for (const gone of reported) if (!now.has(gone)) for (const g of gauges) g.remove({ peer: gone });
    reported = now;
  });
  return ids;
}

/**
 * Gauges whose truth is in Postgres (DLQ, catch-up, audit), refreshed at scrape time so
 * every process (API or worker) reports the same figures without a background loop.
 */
export function registerDatabaseCollectors(metrics: Metrics, db: Db, peers: ReportedPeers, pausedPeers: () => string[] = () => []): void {
  const ids = followReportedPeers(metrics, peers, [metrics.dlqDepth, metrics.dlqQuarantined, metrics.dlqOldestPendingAge, metrics.catchupLastSuccess, metrics.catchupLagRows, metrics.catchupLagSeconds, metrics.catchupRefusalsPending, metrics.peerLagRows, metrics.peerLagSeconds, metrics.peerPaused]);
  metrics.onScrape(async () => {
    const stats = await dlqStats(db);
    for (const id of ids()) {
      const p = stats.byPeer.find((b) => b.peerId === id);
      metrics.dlqDepth.set({ peer: id }, p?.pending ?? 0);
      metrics.dlqQuarantined.set({ peer: id }, p?.quarantined ?? 0);
      metrics.dlqOldestPendingAge.set({ peer: id }, p?.oldestPendingAgeSeconds ?? 0);
    }
  });
  metrics.onScrape(async () => {
    const marks = new Map((await watermarkTimes(db)).map((w) => [w.peerId, w]));
    for (const id of ids()) {
      const w = marks.get(id);
      metrics.catchupLastSuccess.set({ peer: id }, w?.lastSuccessEpoch ?? 0);
      metrics.catchupLagRows.set({ peer: id }, w?.lagRows ?? 0);
      metrics.catchupLagSeconds.set({ peer: id }, w ? catchupLagSeconds(w.lagRows, w.lastRowEpoch, now() / 1000) : 0);
    }
  });
  metrics.onScrape(async () => {
    const pending = new Map((await refusalStats(db)).byPeer.map((p) => [p.peerId, p.pending]));
    for (const id of ids()) metrics.catchupRefusalsPending.set({ peer: id }, pending.get(id) ?? 0);
  });
  metrics.onScrape(async () => {
    const paused = new Set(pausedPeers());
    for (const id of ids()) metrics.peerPaused.set({ peer: id }, paused.has(id) ? 1 : 0);
  });
  metrics.onScrape(async () => {
    for (const [peer, lag] of await peerLag(db, ids())) {
      metrics.peerLagRows.set({ peer }, lag.rows);
      metrics.peerLagSeconds.set({ peer }, lag.seconds);
    }
  });
  metrics.onScrape(async () => {
    metrics.tombstones.set(await tombstoneCount(db));
    const f = await feedFigures(db);
    metrics.feedRows.set(f.rows);
    metrics.feedOldestAge.set(f.oldest?.ageSeconds ?? 0);
    metrics.feedHorizonSeq.set(positionGaugeValue(f.horizon));
    const cursors = new Map((await listCursors(db)).map((c) => [c.peerId, c]));
    metrics.feedPeersBehindHorizon.set(ids().filter((id) => behindHorizon(cursors.get(id) ?? FEED_START, f.horizon)).length);
  });
  metrics.onScrape(async () => {
    const a = await auditFigures(db);
    metrics.auditHeadSeq.set(a.headSeq);
    metrics.auditOutboxDepth.set(a.outboxDepth);
    metrics.auditCheckpointAge.set(a.lastCheckpointAgeSeconds);
  });
}

/** The refusal breaker per peer, from Redis (shared by every process of the node). */
export function registerBreakerCollector(metrics: Metrics, breaker: RefusalBreaker, peers: ReportedPeers): void {
  // A removed peer's gauge goes (a breaker left at 1 would page for ever).
  const ids = followReportedPeers(metrics, peers, [metrics.pushRefusalBreakerOpen]);
  metrics.onScrape(async () => {
    for (const id of ids()) metrics.pushRefusalBreakerOpen.set({ peer: id }, (await breaker.state(id)).open ? 1 : 0);
  });
}
