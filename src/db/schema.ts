import { sql } from 'drizzle-orm';
import { bigint, bigserial, customType, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/** Postgres xid8 (64-bit transaction id), carried as a decimal string. */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => 'xid8' });

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 6, mode: 'string' });

/**
 * One row per memory id, live or tombstoned. `doc` is the wire object exactly as served
 * (unknown keys included); the other columns are derived from it for filtering and LWW.
 */
export const memories = pgTable(
  'memories',
  {
    id: text('id').primaryKey(),
    namespace: text('namespace').notNull(),
    tier: text('tier').notNull(),
    title: text('title').notNull(),
    agentId: text('agent_id'),
    tags: text('tags').array().notNull(),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
    expiresAt: ts('expires_at'),
    /** Set when the memory is a tombstone; LWW time of a tombstone. */
    deletedAt: ts('deleted_at'),
    version: integer('version').notNull(),
    /**
     * Archive register (LWW by `archive_changed_at`): `archived_at` is set while the last
     * archive/restore event was an archive. The memory is archived while
     * archived_at >= updated_at (a newer content update wins over an older archive).
     */
    archivedAt: ts('archived_at'),
    /** Time of the latest archive or restore event applied (null: never archived). */
    archiveChangedAt: ts('archive_changed_at'),
    /** Why it was archived (upstream `archived_memories.archive_reason`); set with the register. */
    archiveReason: text('archive_reason'),
    /** SHA-256 of the canonical doc: the deterministic LWW tie-break. */
    digest: text('digest').notNull(),
    doc: jsonb('doc').notNull(),
  },
  (t) => [
    index('memories_namespace_updated_idx').on(t.namespace, t.updatedAt),
    index('memories_updated_idx').on(t.updatedAt, t.id),
    index('memories_created_idx').on(t.createdAt),
    // No pending list (fastupdate off): with one, the insert that finds it past
    // gin_pending_list_limit merges it into the index itself, a stall of tens of ms for
    // every write waiting behind that commit (docs/performance.md).
    index('memories_tags_idx').using('gin', t.tags).with({ fastupdate: false }),
    // The expiry sweep and tombstone GC take their oldest candidates first (src/store/expiry.ts).
    index('memories_expiring_idx').on(t.expiresAt).where(sql`deleted_at IS NULL AND expires_at IS NOT NULL`),
    index('memories_tombstones_idx').on(t.deletedAt).where(sql`deleted_at IS NOT NULL`),
    // Anti-entropy repair buckets rows by the hex MD5 of the id (src/store/repair-digests.ts):
    // a bucket (a hex prefix) is one range scan of this index.
    index('memories_repair_bucket_idx').on(sql`(md5(${t.id}) COLLATE "C")`),
  ],
);

/**
 * The local change feed: one row per committed change, written in the same transaction.
 * Readers order by (txid, seq) and only read below the snapshot xmin, so no change can
 * ever commit behind a position already handed out (docs/invariants.md, point 4).
 */
export const changeFeed = pgTable(
  'change_feed',
  {
    seq: bigserial('seq', { mode: 'bigint' }).primaryKey(),
    txid: xid8('txid').notNull().default(sql`pg_current_xact_id()`),
    memoryId: text('memory_id').notNull(),
    op: text('op').notNull(),
    /** Peer the change was applied from (null = local write); never pushed back to it. */
    originPeer: text('origin_peer'),
    committedAt: ts('committed_at').notNull().default(sql`now()`),
  },
  (t) => [index('change_feed_pos_idx').on(t.txid, t.seq)],
);

/**
 * Memory links, one row per (source, target, relation), an LWW element set: `created_at`
 * is the latest creation seen, `removed_at` the latest removal; the link is live while
 * removed_at is null or created_at > removed_at. Link changes enter the change feed under
 * the source memory's id.
 */
export const memoryLinks = pgTable(
  'memory_links',
  {
    sourceId: text('source_id').notNull(),
    targetId: text('target_id').notNull(),
    relation: text('relation').notNull(),
    createdAt: ts('created_at').notNull(),
    removedAt: ts('removed_at'),
    /** Upstream's optional H3 fields, kept as sent. */
    signature: jsonb('signature'),
    observedBy: text('observed_by'),
    validFrom: text('valid_from'),
    validUntil: text('valid_until'),
    attestLevel: text('attest_level').notNull().default('unsigned'),
  },
  (t) => [primaryKey({ columns: [t.sourceId, t.targetId, t.relation] }), index('memory_links_target_idx').on(t.targetId)],
);

/** Per-peer delivery cursor into the change feed: the durable intent to deliver. */
export const peerCursors = pgTable('peer_cursors', {
  peerId: text('peer_id').primaryKey(),
  txid: xid8('txid').notNull().default(sql`'0'::xid8`),
  seq: bigint('seq', { mode: 'bigint' }).notNull().default(sql`0`),
  lastAckAt: ts('last_ack_at'),
  lastError: text('last_error'),
  lastErrorClass: text('last_error_class'),
  /** The reconciler leaves a peer alone until then (set after an unenrolled refusal). */
  retryAt: ts('retry_at'),
  /** Push attempts failed in a row since the peer last acked (0 = the last push succeeded). */
  failureStreak: integer('failure_streak').notNull().default(0),
  updatedAt: ts('updated_at').notNull().default(sql`now()`),
});

/**
 * Rows a peer refused permanently. At most one pending row per (peer, memory); replay
 * takes pending rows oldest first; quarantined rows are kept until an operator acts.
 */
export const pushDlq = pgTable(
  'federation_push_dlq',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    peerId: text('peer_id').notNull(),
    memoryId: text('memory_id').notNull(),
    op: text('op').notNull(),
    /** The row as it was refused (memory doc or tombstone). */
    payload: jsonb('payload').notNull(),
    status: text('status').notNull().default('pending'),
    failureClass: text('failure_class').notNull(),
    lastError: text('last_error').notNull(),
    attempts: integer('attempts').notNull().default(0),
    createdAt: ts('created_at').notNull().default(sql`now()`),
    updatedAt: ts('updated_at').notNull().default(sql`now()`),
    lastAttemptAt: ts('last_attempt_at'),
    quarantinedAt: ts('quarantined_at'),
    resolvedAt: ts('resolved_at'),
    /** Replay lease: a replayer owns the row until then (two replayers never send one row). */
    leaseOwner: text('lease_owner'),
    leaseUntil: ts('lease_until'),
  },
  (t) => [
    uniqueIndex('federation_push_dlq_pending_uq').on(t.peerId, t.memoryId).where(sql`status = 'pending'`),
    index('federation_push_dlq_take_idx').on(t.createdAt, t.id).where(sql`status = 'pending'`),
    index('federation_push_dlq_peer_status_idx').on(t.peerId, t.status),
  ],
);

/** Catch-up watermark per peer: where the last successful pull ended (docs/invariants.md, point 8). */
export const peerWatermarks = pgTable('peer_watermarks', {
  peerId: text('peer_id').primaryKey(),
  /** memfed peers: opaque change-feed cursor. */
  cursor: text('cursor'),
  /** ai-memory peers: `since` (latest updated_at applied). */
  since: text('since'),
  lastPullAt: ts('last_pull_at'),
  lastSuccessAt: ts('last_success_at'),
  lastError: text('last_error'),
  /** Rows the last pull left behind (0 when caught up) and age of the newest row applied. */
  lagRows: integer('lag_rows').notNull().default(0),
  lastRowAt: ts('last_row_at'),
  /** Pulls failed (or halted) in a row since the last successful one (0 = the last pull succeeded). */
  failureStreak: integer('failure_streak').notNull().default(0),
  /**
   * memfed peers whose feed was pruned past our cursor: the snapshot being pulled (its
   * next page token, null before the first page) and the feed position it was taken at;
   * after its last page the cursor becomes that position. Null: no bootstrap in progress.
   */
  snapshotToken: text('snapshot_token'),
  snapshotCursor: text('snapshot_cursor'),
  updatedAt: ts('updated_at').notNull().default(sql`now()`),
});

/** The audit chain: hash-linked, signed entries; `canonical` is exactly what payload_hash covers. */
export const auditLog = pgTable(
  'audit_log',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
    kind: text('kind').notNull(),
    prevHash: text('prev_hash').notNull(),
    payloadHash: text('payload_hash').notNull(),
    hash: text('hash').notNull(),
    canonical: text('canonical').notNull(),
    keyId: text('key_id').notNull(),
    signature: text('signature').notNull(),
    /** Producer-side id: a stalled audit job run twice never appends an event twice. */
    eventId: text('event_id').notNull(),
    appendedAt: ts('appended_at').notNull().default(sql`now()`),
  },
  (t) => [uniqueIndex('audit_log_event_id_uq').on(t.eventId), index('audit_log_kind_idx').on(t.kind, t.seq)],
);

/** Signed checkpoints of the chain head (also served to peers). */
export const auditCheckpoints = pgTable('audit_checkpoints', {
  seq: bigint('seq', { mode: 'number' }).primaryKey(),
  hash: text('hash').notNull(),
  at: text('at').notNull(),
  keyId: text('key_id').notNull(),
  signature: text('signature').notNull(),
});

/**
 * The audit outbox: every audit event is written here before it is enqueued; the audit
 * worker appends pending rows to the chain and marks them appended. Nothing is lost
 * with Redis (jobs carry outbox ids only).
 */
export const auditOutbox = pgTable(
  'audit_outbox',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    eventId: text('event_id').notNull(),
    event: jsonb('event').notNull(),
    reason: text('reason').notNull(),
    attempts: integer('attempts').notNull().default(0),
    status: text('status').notNull().default('pending'),
    createdAt: ts('created_at').notNull().default(sql`now()`),
    updatedAt: ts('updated_at').notNull().default(sql`now()`),
  },
  (t) => [uniqueIndex('audit_outbox_event_id_uq').on(t.eventId), index('audit_outbox_pending_idx').on(t.id).where(sql`status = 'pending'`)],
);

/**
 * Rows a catch-up pull refused for good (validation, governance, a future timestamp): kept
 * as served so an operator can see and re-apply them; the watermark passes them in the same
 * transaction that records them. One pending row per (peer, memory).
 */
export const catchupRefusals = pgTable(
  'catchup_refusals',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    peerId: text('peer_id').notNull(),
    memoryId: text('memory_id').notNull(),
    /** memories (a memory object) or tombstones (a deletion). */
    lane: text('lane').notNull().default('memories'),
    /** The row exactly as the peer served it (JSON text: it may hold what jsonb refuses). */
    row: text('row').notNull(),
    /** Stable class: VALIDATION, FUTURE_TIMESTAMP or a GOVERNANCE_* code. */
    code: text('code').notNull(),
    reason: text('reason').notNull(),
    status: text('status').notNull().default('pending'),
    /** Times the row was refused (each pull that served it again, each failed re-apply). */
    attempts: integer('attempts').notNull().default(1),
    firstSeenAt: ts('first_seen_at').notNull().default(sql`now()`),
    lastSeenAt: ts('last_seen_at').notNull().default(sql`now()`),
    resolvedAt: ts('resolved_at'),
    /** How it was resolved: applied, or superseded (a version already here won LWW). */
    resolution: text('resolution'),
  },
  (t) => [
    uniqueIndex('catchup_refusals_pending_uq').on(t.peerId, t.memoryId).where(sql`status = 'pending'`),
    index('catchup_refusals_peer_status_idx').on(t.peerId, t.status),
  ],
);

/** Raw bytes (postgres.js hands back a Buffer). */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * The federation peers of this node, managed at runtime (`memfed peers`, the admin API);
 * `FED_PEERS` seeds rows that do not exist yet. A removed peer keeps its row (and its
 * cursor and DLQ rows) so its requests are refused by name and a restart with the same
 * `FED_PEERS` does not bring it back.
 */
export const peers = pgTable('peers', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  flavour: text('flavour').notNull().default('memfed'),
  /** Enrolled Ed25519 public key, raw 32 bytes; null: `<id>.pub` in FED_KEY_DIR (if any) is used. */
  publicKey: bytea('public_key'),
  /** active | paused | removed */
  state: text('state').notNull().default('active'),
  /** Where the row came from: `fed_peers` (seeded at start-up) or `operator`. */
  source: text('source').notNull().default('operator'),
  createdAt: ts('created_at').notNull().default(sql`now()`),
  updatedAt: ts('updated_at').notNull().default(sql`now()`),
});

/**
 * Tombstone GC's high-water mark (one row, id 1): the newest `deleted_at` of any tombstone
 * this node ever collected. A row version for an id held nowhere here, no newer than it,
 * may be the copy of a deleted memory whose tombstone is gone: it is refused
 * (`beyond_tombstone_grace`, docs/operations.md "Tombstone GC").
 */
export const tombstoneGc = pgTable('tombstone_gc', {
  id: integer('id').primaryKey(),
  collectedThrough: ts('collected_through').notNull(),
  updatedAt: ts('updated_at').notNull().default(sql`now()`),
});

/**
 * Change-feed retention state, one row (id 1): every feed entry at or before
 * (pruned_txid, pruned_seq) has been pruned. A reader whose position is behind it has
 * missed entries and must bootstrap from a snapshot (docs/operations.md, "Change-feed
 * retention and snapshot bootstrap").
 */
export const feedHorizon = pgTable('feed_horizon', {
  id: integer('id').primaryKey().default(1),
  prunedTxid: xid8('pruned_txid').notNull().default(sql`'0'::xid8`),
  prunedSeq: bigint('pruned_seq', { mode: 'bigint' }).notNull().default(sql`0`),
  /** Feed rows pruned since the node was created. */
  prunedRows: bigint('pruned_rows', { mode: 'number' }).notNull().default(0),
  updatedAt: ts('updated_at').notNull().default(sql`now()`),
});

/**
 * Snapshots in progress, one per holder: `serve:<peer>` (a peer paging through
 * GET /sync/snapshot) or `push:<peer>` (this node pushing a snapshot to a peer). Its
 * position is the feed head when it started; while it is touched within
 * FEED_SNAPSHOT_TTL_MS, retention keeps every feed entry after that position.
 */
export const feedSnapshots = pgTable('feed_snapshots', {
  holder: text('holder').primaryKey(),
  /** Random id: a page token names it, so a replaced snapshot's tokens stop working. */
  snapshotId: text('snapshot_id').notNull(),
  txid: xid8('txid').notNull(),
  seq: bigint('seq', { mode: 'bigint' }).notNull(),
  /** Push snapshots: the last memory id sent (null: none yet). */
  afterId: text('after_id'),
  /** Rows sent so far (push snapshots). */
  rows: integer('rows').notNull().default(0),
  createdAt: ts('created_at').notNull().default(sql`now()`),
  touchedAt: ts('touched_at').notNull().default(sql`now()`),
});
