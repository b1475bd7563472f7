import os from 'node:os';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The `process` label: PROCESS_ID when set (a stable name, e.g. the pod or unit name),
 * else `<role>-<hostname>-<pid>`. It tells apart the processes of one node (several API
 * and worker processes share `node` and `role`), so their series never overwrite each
 * other and sum correctly; one value per process keeps its cardinality bounded.
 */
export const processLabel = (role: string, configured = '') => configured || `${role}-${os.hostname()}-${process.pid}`;

/**
 * Every metric memfed exposes is defined here, on a registry per process (so several
 * in-process nodes in tests never collide). Labels are bounded: peer ids come from
 * config, outcome classes and routes from fixed sets.
 */
export function createMetrics(opts: { nodeId: string; role: string; processId?: string; defaultMetrics?: boolean }) {
  const registry = new Registry();
  registry.setDefaultLabels({ node: opts.nodeId, role: opts.role, process: processLabel(opts.role, opts.processId) });
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: 'memfed_' });
    // prom-client names these gauges *_total, which Prometheus reserves for counters
    // (promtool check metrics refuses them); memfed_nodejs_active_resources{type} stays.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`memfed_nodejs_${name}`);
  }

  // Gauges read from Postgres are refreshed by hooks run just before each scrape.
  const scrapeHooks: Array<() => Promise<void>> = [];

  const m = {
    registry,
    /** Registers a refresh run before every scrape (bounded by the caller's timeout). */
    onScrape(hook: () => Promise<void>) {
      scrapeHooks.push(hook);
    },
    async render(timeoutMs = 3000): Promise<string> {
      await Promise.race([Promise.allSettled(scrapeHooks.map((h) => h())), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      return registry.metrics();
    },
    httpRequestDuration: new Histogram({
      name: 'memfed_http_request_duration_seconds',
      help: 'HTTP request duration by route pattern, method and status class',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    memoryWrites: new Counter({
      name: 'memfed_memory_writes_total',
      help: 'Committed local memory writes by operation',
      labelNames: ['op'] as const,
      registers: [registry],
    }),
    writeBatchSize: new Histogram({
      name: 'memfed_write_batch_size',
      help: 'Single-memory creates committed per shared transaction (group commit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
      registers: [registry],
    }),
    enqueueFailures: new Counter({
      name: 'memfed_enqueue_failures_total',
      help: 'Jobs that could not be enqueued after commit (the reconciler delivers them later)',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    jobOutcomes: new Counter({
      name: 'memfed_jobs_total',
      help: 'Job attempts by queue and outcome (completed, retried, failed = final attempt failed)',
      labelNames: ['queue', 'outcome'] as const,
      registers: [registry],
    }),
    pushOutcomes: new Counter({
      name: 'memfed_push_outcomes_total',
      help: 'Outbound push requests by peer and outcome class',
      labelNames: ['peer', 'class'] as const,
      registers: [registry],
    }),
    pushedRows: new Counter({
      name: 'memfed_pushed_rows_total',
      help: 'Change-feed rows acknowledged by peers',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    pushRefusedRows: new Counter({
      name: 'memfed_push_refused_rows_total',
      help: 'Change-feed rows a peer refused for good at push time and that were dead-lettered, by failure class (permanent, skipped, id_drift)',
      labelNames: ['peer', 'class'] as const,
      registers: [registry],
    }),
    pushRefusalBreakerOpen: new Gauge({
      name: 'memfed_push_refusal_breaker_open',
      help: 'Refusal breaker per peer: 1 = open (the peer refused whole batches; they are dead-lettered unsplit until a probe succeeds), read from Redis at scrape time',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    fanoutRetries: new Counter({
      name: 'ai_memory_federation_fanout_retry_total',
      help: 'Push attempts that failed transiently and will be retried',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    quorumOutcomes: new Counter({
      name: 'memfed_quorum_outcomes_total',
      help: 'Quorum write outcomes (met, timeout, unreachable, refused)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    partialQuorum: new Counter({
      name: 'ai_memory_federation_partial_quorum_total',
      help: 'Writes answered 503 quorum_not_met (committed locally, delivery continues)',
      registers: [registry],
    }),
    quorumAckSeconds: new Histogram({
      name: 'memfed_quorum_ack_seconds',
      help: 'Time from local commit until the write quorum was met',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers: [registry],
    }),
    inboundRefusals: new Counter({
      name: 'memfed_inbound_refusals_total',
      help: 'Federation requests refused, by reason tag',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    unsignedSincePulls: new Counter({
      name: 'memfed_unsigned_since_pulls_total',
      help: 'Unsigned GET /sync/since pulls accepted from peers declared flavour=ai-memory-0.7 (their poller never signs)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    appliedRows: new Counter({
      name: 'memfed_applied_rows_total',
      help: 'Rows received from peers by apply status (applied, noop, skipped)',
      labelNames: ['status', 'via'] as const,
      registers: [registry],
    }),
    peerLagRows: new Gauge({
      name: 'memfed_peer_lag_rows',
      help: 'Change-feed rows not yet acknowledged by the peer',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    peerLagSeconds: new Gauge({
      name: 'memfed_peer_lag_seconds',
      help: 'Age of the oldest change not yet acknowledged by the peer',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    peerPaused: new Gauge({
      name: 'memfed_peer_paused',
      help: '1 while the peer is paused (memfed peers pause): nothing is sent to it and its lag grows on purpose',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    dlqDepth: new Gauge({
      name: 'ai_memory_federation_push_dlq_depth',
      help: 'Pending (replayable) push DLQ rows per peer',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    dlqQuarantined: new Gauge({
      name: 'memfed_push_dlq_quarantined',
      help: 'Quarantined push DLQ rows per peer (released only by an operator)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    dlqOldestPendingAge: new Gauge({
      name: 'memfed_push_dlq_oldest_pending_age_seconds',
      help: 'Age of the oldest pending push DLQ row per peer (0 when none)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    dlqQuarantines: new Counter({
      name: 'ai_memory_federation_push_dlq_quarantined_total',
      help: 'Push DLQ rows quarantined after reaching DLQ_MAX_REPLAY_ATTEMPTS',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    dlqReplays: new Counter({
      name: 'memfed_push_dlq_replay_total',
      help: 'Push DLQ rows replayed, by outcome (replayed, failed = refused again, throttled, peer_unavailable, breaker_open = not sent: the peer refusal breaker is open, expired = the memory expired: nothing left to deliver)',
      labelNames: ['peer', 'outcome'] as const,
      registers: [registry],
    }),
    catchupLastSuccess: new Gauge({
      name: 'memfed_catchup_last_success_timestamp_seconds',
      help: 'Unix time of the last successful catch-up pull per peer (0 = never)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    catchupLagRows: new Gauge({
      name: 'memfed_catchup_lag_rows',
      help: 'Rows the peer still had after the last catch-up pull (0 = caught up)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    catchupLagSeconds: new Gauge({
      name: 'memfed_catchup_lag_seconds',
      help: 'Seconds since the newest row pulled from the peer was written there',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    catchupPulls: new Counter({
      name: 'memfed_catchup_pulls_total',
      help: 'Catch-up pulls by peer and outcome (ok, failed, apply_failed = halted by a transient apply failure, boundary_skip)',
      labelNames: ['peer', 'outcome'] as const,
      registers: [registry],
    }),
    repairRuns: new Counter({
      name: 'memfed_repair_runs_total',
      help: 'Anti-entropy repair runs by peer, trigger (schedule, operator, restored) and outcome (ok, failed, budget)',
      labelNames: ['peer', 'trigger', 'outcome'] as const,
      registers: [registry],
    }),
    repairRows: new Counter({
      name: 'memfed_repair_rows_total',
      help: 'Rows repair exchanged by peer and direction (pulled = applied here, pushed = sent to the peer, dropped = removed here after a restore, beyond_grace = one-sided rows older than TOMBSTONE_GRACE not sent)',
      labelNames: ['peer', 'direction'] as const,
      registers: [registry],
    }),
    repairBuckets: new Counter({
      name: 'memfed_repair_buckets_compared_total',
      help: 'Hash buckets compared by repair, by peer',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    repairRequests: new Counter({
      name: 'memfed_repair_requests_total',
      help: 'Federation requests repair made, by peer and operation (digests, keys, rows, push)',
      labelNames: ['peer', 'op'] as const,
      registers: [registry],
    }),
    repairLastSuccess: new Gauge({
      name: 'memfed_repair_last_success_timestamp_seconds',
      help: 'Unix time the last repair against the peer completed',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    repairDuration: new Histogram({
      name: 'memfed_repair_duration_seconds',
      help: 'Wall time of a repair run, by peer',
      labelNames: ['peer'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    restoreDetections: new Counter({
      name: 'memfed_restore_detections_total',
      help: 'Times this node found a peer holding a feed position it does not have (restored from an older backup, or feed history lost): each starts a post-restore repair',
      registers: [registry],
    }),
    catchupRefusals: new Counter({
      name: 'memfed_catchup_refusals_total',
      help: 'Rows a catch-up pull refused for good and recorded (then passed), by peer and reason code',
      labelNames: ['peer', 'reason'] as const,
      registers: [registry],
    }),
    catchupRefusalsPending: new Gauge({
      name: 'memfed_catchup_refusals_pending',
      help: 'Recorded catch-up refusals still pending per peer (memfed catchup refusals list)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    catchupReapplies: new Counter({
      name: 'memfed_catchup_refusal_reapplies_total',
      help: 'Re-applies of recorded catch-up refusals by outcome (applied, superseded, refused)',
      labelNames: ['peer', 'outcome'] as const,
      registers: [registry],
    }),
    queueJobs: new Gauge({
      name: 'memfed_queue_jobs',
      help: 'BullMQ jobs per queue and state (waiting, active, delayed, failed, completed), read at scrape time',
      labelNames: ['queue', 'state'] as const,
      registers: [registry],
    }),
    queueWorkers: new Gauge({
      name: 'memfed_queue_workers',
      help: 'Live BullMQ workers serving the queue (any process, from Redis CLIENT LIST), read at scrape time',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    jobsStalled: new Counter({
      name: 'memfed_jobs_stalled_total',
      help: "Jobs this process's stalled check moved back to wait because their worker stopped renewing the lock",
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    jobLocksLost: new Counter({
      name: 'memfed_job_locks_lost_total',
      help: 'Jobs whose lock this process failed to renew (another worker may run them now); each run is told to stop',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    workerReplacements: new Counter({
      name: 'memfed_worker_replacements_total',
      help: 'Workers replaced by the watchdog because they stopped taking jobs while one waited',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    queueOldestWaitingAge: new Gauge({
      name: 'memfed_queue_oldest_waiting_age_seconds',
      help: 'Age of the oldest waiting job per queue (0 when none)',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    auditHeadSeq: new Gauge({
      name: 'memfed_audit_head_sequence',
      help: 'Sequence number of the audit chain head',
      registers: [registry],
    }),
    auditAppends: new Counter({
      name: 'memfed_audit_appends_total',
      help: 'Audit events appended to the chain',
      registers: [registry],
    }),
    auditOutboxDepth: new Gauge({
      name: 'memfed_audit_outbox_depth',
      help: 'Audit events pending over 30 s in the audit outbox (not yet in the chain)',
      registers: [registry],
    }),
    auditCheckpointAge: new Gauge({
      name: 'memfed_audit_last_checkpoint_age_seconds',
      help: 'Age of the oldest audit entry no signed checkpoint covers yet (0 = all covered)',
      registers: [registry],
    }),
    expiredSwept: new Counter({
      name: 'memfed_expired_swept_total',
      help: 'Expired memories deleted locally by the expiry sweep (never replicated)',
      registers: [registry],
    }),
    tombstonesCollected: new Counter({
      name: 'memfed_tombstones_collected_total',
      help: 'Tombstones removed by tombstone GC (older than TOMBSTONE_GRACE_MS and sent to every peer)',
      registers: [registry],
    }),
    tombstones: new Gauge({
      name: 'memfed_tombstones',
      help: 'Tombstones held in the memories table',
      registers: [registry],
    }),
    beyondGraceRefused: new Counter({
      name: 'memfed_beyond_grace_refused_total',
      help: 'Rows from peers refused as beyond_tombstone_grace (an id held nowhere here, no newer than a collected tombstone)',
      labelNames: ['via', 'lane'] as const,
      registers: [registry],
    }),
    expiredArrivals: new Counter({
      name: 'memfed_expired_arrivals_total',
      help: 'Already expired memories received from peers, by outcome (applied = replaced an older version, hidden; noop = an equal or newer version is here; discarded = nothing of the id here, not stored)',
      labelNames: ['via', 'outcome'] as const,
      registers: [registry],
    }),
    feedRows: new Gauge({
      name: 'memfed_feed_rows',
      help: 'Change-feed rows retained',
      registers: [registry],
    }),
    feedOldestAge: new Gauge({
      name: 'memfed_feed_oldest_age_seconds',
      help: 'Age of the oldest retained change-feed entry (0 = the feed is empty)',
      registers: [registry],
    }),
    feedHorizonSeq: new Gauge({
      name: 'memfed_feed_horizon_seq',
      help: 'seq of the last pruned change-feed entry (the retained horizon; 0 = nothing pruned)',
      registers: [registry],
    }),
    feedPeersBehindHorizon: new Gauge({
      name: 'memfed_feed_peers_behind_horizon',
      help: 'Configured peers whose delivery cursor is behind the retained horizon (bootstrapped by snapshot)',
      registers: [registry],
    }),
    feedPrunedRows: new Counter({
      name: 'memfed_feed_pruned_rows_total',
      help: 'Change-feed rows deleted by retention',
      registers: [registry],
    }),
    snapshotPages: new Counter({
      name: 'memfed_snapshot_pages_total',
      help: 'Snapshot pages by peer and direction (served: GET /sync/snapshot answered; applied: pulled and applied; pushed: sent by the snapshot push)',
      labelNames: ['peer', 'direction'] as const,
      registers: [registry],
    }),
    snapshotRows: new Counter({
      name: 'memfed_snapshot_rows_total',
      help: 'Snapshot rows by peer and direction (served, applied, pushed)',
      labelNames: ['peer', 'direction'] as const,
      registers: [registry],
    }),
    snapshotBootstraps: new Counter({
      name: 'memfed_snapshot_bootstraps_total',
      help: 'Snapshot bootstraps by peer, direction (pull, push) and outcome (started, completed, restarted)',
      labelNames: ['peer', 'direction', 'outcome'] as const,
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
