import type { Db } from './db/client.js';
import type { Metrics } from './metrics.js';
import { auditFigures } from './store/audit.js';
import { dlqStats } from './store/dlq.js';
import { refusalStats } from './store/catchup-refusals.js';
import { catchupLagSeconds, watermarkTimes } from './store/watermarks.js';
import { peerLag } from './store/cursors.js';
import type { RefusalBreaker } from './federation/refusal-breaker.js';

/**
 * Gauges whose truth is in Postgres (DLQ, catch-up, audit), refreshed at scrape time so
 * every process (API or worker) reports the same figures without a background loop.
 */
export function registerDatabaseCollectors(metrics: Metrics, db: Db, peers: string[] | (() => string[]), pausedPeers: () => string[] = () => []): void {
  // A function: the runtime peer list, read at each scrape (a peer added since is reported).
  const ids = () => (typeof peers === 'function' ? peers() : peers);
  // A peer removed at runtime stops being reported (its series go, not freeze at a last value).
  let reported = new Set<string>();
  const perPeer = [metrics.dlqDepth, metrics.dlqQuarantined, metrics.dlqOldestPendingAge, metrics.catchupLastSuccess, metrics.catchupLagRows, metrics.catchupLagSeconds, metrics.catchupRefusalsPending, metrics.peerLagRows, metrics.peerLagSeconds, metrics.peerPaused];
  metrics.onScrape(async () => {
    const now = new Set(ids());
    for (const gone of reported) if (!now.has(gone)) for (const g of perPeer) g.remove({ peer: gone });
    reported = now;
  });
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
      metrics.catchupLagSeconds.set({ peer: id }, w ? catchupLagSeconds(w.lagRows, w.lastRowEpoch, Date.now() / 1000) : 0);
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
    const a = await auditFigures(db);
    metrics.auditHeadSeq.set(a.headSeq);
    metrics.auditOutboxDepth.set(a.outboxDepth);
    metrics.auditCheckpointAge.set(a.lastCheckpointAgeSeconds);
  });
}

/** The refusal breaker per peer, from Redis (shared by every process of the node). */
export function registerBreakerCollector(metrics: Metrics, breaker: RefusalBreaker, peers: string[] | (() => string[])): void {
  // A removed peer's gauge goes (a breaker left at 1 would page for ever).
  let reported = new Set<string>();
  metrics.onScrape(async () => {
    const now = new Set(typeof peers === 'function' ? peers() : peers);
    for (const gone of reported) if (!now.has(gone)) metrics.pushRefusalBreakerOpen.remove({ peer: gone });
    reported = now;
    for (const id of now) metrics.pushRefusalBreakerOpen.set({ peer: id }, (await breaker.state(id)).open ? 1 : 0);
  });
}
