import type { UpLink, UpMemory } from './serde.js';

/** chrono `Utc::now().to_rfc3339()`: `+00:00`, a fraction only when non-zero (here milliseconds). */
export const chronoNow = (): string => {
  const iso = new Date().toISOString();
  return iso.replace(/\.000Z$/, '+00:00').replace('Z', '+00:00');
};

/** upstream src/models/memory.rs Memory::effective_expires_at: a missing expiry is created_at + the tier TTL. */
function effectiveExpiresAt(m: UpMemory): string | undefined {
  if (m.expires_at !== undefined) return m.expires_at;
  const ttl = m.tier === 'short' ? 6 * 3600 : m.tier === 'mid' ? 7 * 86400 : null;
  if (ttl === null) return undefined;
  const base = Date.parse(m.created_at);
  const at = new Date((Number.isNaN(base) ? Date.now() : base) + ttl * 1000).toISOString();
  return at.replace(/\.000Z$/, '+00:00').replace('Z', '+00:00');
}

export class StoreError extends Error {}

/**
 * The tables an upstream 0.7 node keeps for federation, with its SQL's semantics
 * (upstream src/storage/mod.rs). `memories` is keyed by id with a UNIQUE (title, namespace)
 * index (src/storage/migrations.rs idx_memories_title_ns); `seq` stands for SQLite's rowid
 * (the tie order of ORDER BY updated_at).
 */
export class UpstreamStore {
  readonly memories = new Map<string, UpMemory & { seq: number }>();
  readonly archived = new Map<string, UpMemory & { archived_at: string; archive_reason: string; original_tier: string; original_expires_at?: string }>();
  /** memory_links, unique on (source_id, target_id, relation). */
  readonly links = new Map<string, UpLink & { attest_level: string }>();
  /** sync_state: `${agent_id}\n${peer_id}` -> last_seen_at (monotonic by string comparison). */
  readonly syncState = new Map<string, string>();
  private seq = 0;

  byTitle(title: string, namespace: string): (UpMemory & { seq: number }) | undefined {
    for (const m of this.memories.values()) if (m.title === title && m.namespace === namespace) return m;
    return undefined;
  }

  /**
   * src/storage/mod.rs insert_if_newer: `INSERT ... ON CONFLICT(title, namespace) DO UPDATE`.
   * The conflict target is (title, namespace), not id: a row arriving under a new id with an
   * existing (title, namespace) merges into the existing row (which keeps its id, returned);
   * a known id arriving with a different (title, namespace) violates the id primary key and
   * fails (the caller counts it `skipped`). The merge takes the incoming columns only when the
   * incoming row is newer (updated_at greater, or equal with a greater id), with the
   * column-specific rules of the SQL (MAX priority/confidence/access_count/updated_at, the
   * tier ratchet, sticky memory_kind, COALESCE'd entity_id/persona_version/source_uri/
   * source_span, metadata.agent_id preserved).
   */
  insertIfNewer(mem: UpMemory): string {
    const e = this.byTitle(mem.title, mem.namespace);
    if (!e) {
      if (this.memories.has(mem.id)) throw new StoreError('UNIQUE constraint failed: memories.id');
      const expires_at = effectiveExpiresAt(mem);
      const row = { ...mem, seq: ++this.seq } as UpMemory & { seq: number };
      if (expires_at === undefined) delete row.expires_at;
      else row.expires_at = expires_at;
      this.memories.set(mem.id, row);
      return mem.id;
    }
    const newer = mem.updated_at > e.updated_at || (mem.updated_at === e.updated_at && mem.id > e.id);
    const win = <T>(inc: T, cur: T): T => (newer ? inc : cur);
    const tier = mem.tier === 'long' || e.tier === 'long' ? 'long' : mem.tier === 'mid' ? 'mid' : e.tier;
    const expires = tier === 'long' ? undefined : (effectiveExpiresAt(mem) ?? e.expires_at);
    const curMeta = (e.metadata ?? {}) as Record<string, unknown>;
    let metadata = win(mem.metadata, e.metadata) as Record<string, unknown>;
    if (curMeta && typeof curMeta === 'object' && curMeta.agent_id !== undefined && curMeta.agent_id !== null) metadata = { ...(metadata ?? {}), agent_id: curMeta.agent_id };
    const merged: UpMemory & { seq: number } = {
      ...e,
      content: win(mem.content, e.content),
      tags: win(mem.tags, e.tags),
      priority: Math.max(e.priority, mem.priority),
      confidence: Math.max(e.confidence, mem.confidence),
      source: win(mem.source, e.source),
      tier,
      updated_at: mem.updated_at > e.updated_at ? mem.updated_at : e.updated_at,
      access_count: Math.max(e.access_count, mem.access_count),
      metadata,
      reflection_depth: Math.max(e.reflection_depth, mem.reflection_depth),
      memory_kind: e.memory_kind === 'reflection' || e.memory_kind === 'persona' ? e.memory_kind : mem.memory_kind,
      citations: win(mem.citations, e.citations),
      confidence_source: win(mem.confidence_source, e.confidence_source),
    };
    const setOpt = <K extends keyof UpMemory>(k: K, v: UpMemory[K] | undefined) => {
      if (v === undefined) delete merged[k];
      else merged[k] = v as (typeof merged)[K];
    };
    setOpt('expires_at', expires);
    setOpt('entity_id', e.entity_id ?? mem.entity_id);
    setOpt('persona_version', e.persona_version ?? mem.persona_version);
    setOpt('source_uri', mem.source_uri ?? e.source_uri);
    setOpt('source_span', mem.source_span ?? e.source_span);
    setOpt('confidence_signals', win(mem.confidence_signals, e.confidence_signals));
    setOpt('confidence_decayed_at', win(mem.confidence_decayed_at, e.confidence_decayed_at));
    this.memories.set(e.id, merged);
    return e.id;
  }

  /** src/storage/mod.rs delete: a hard DELETE (no tombstone); false when absent. */
  delete(id: string): boolean {
    return this.memories.delete(id);
  }

  /** src/storage/mod.rs archive_memory: move the live row to archived_memories; false when absent. */
  archive(id: string, reason: string): boolean {
    const m = this.memories.get(id);
    if (!m) return false;
    const { seq: _seq, ...row } = m;
    this.archived.set(id, { ...row, archived_at: chronoNow(), archive_reason: reason, original_tier: m.tier, ...(m.expires_at !== undefined ? { original_expires_at: m.expires_at } : {}) });
    this.memories.delete(id);
    return true;
  }

  /**
   * src/storage/mod.rs restore_archived: false when not archived; an error (409
   * ArchiveRestoreCollision) when a live row has the id; else the row returns with its
   * original tier and expiry and `updated_at` set to now.
   */
  restore(id: string): boolean {
    const a = this.archived.get(id);
    if (!a) return false;
    if (this.memories.has(id)) throw new StoreError(`ArchiveRestoreCollision: ${id}`);
    const { archived_at: _at, archive_reason: _r, original_tier, original_expires_at, ...row } = a;
    const back = { ...row, tier: original_tier as UpMemory['tier'], updated_at: chronoNow(), seq: ++this.seq } as UpMemory & { seq: number };
    if (original_expires_at === undefined) delete back.expires_at;
    else back.expires_at = original_expires_at;
    this.memories.set(id, back);
    this.archived.delete(id);
    return true;
  }

  /**
   * src/storage/mod.rs create_link_inbound: both ends must be live memories (else an error,
   * counted `skipped`); INSERT OR IGNORE on (source_id, target_id, relation), so a duplicate is
   * a success; `valid_from` and `created_at` default to now.
   */
  createLinkInbound(link: UpLink, attestLevel: string): void {
    if (!this.memories.has(link.source_id)) throw new StoreError(`MemoryNotFound source ${link.source_id}`);
    if (!this.memories.has(link.target_id)) throw new StoreError(`MemoryNotFound target ${link.target_id}`);
    const key = `${link.source_id}\n${link.target_id}\n${link.relation}`;
    if (this.links.has(key)) return;
    const now = chronoNow();
    this.links.set(key, { ...link, created_at: link.created_at === '' ? now : link.created_at, valid_from: link.valid_from ?? now, attest_level: attestLevel });
  }

  /** src/storage/mod.rs sync_state_observe: keeps the greater string. */
  observe(agentId: string, peerId: string, seenAt: string): void {
    const k = `${agentId}\n${peerId}`;
    const cur = this.syncState.get(k);
    if (cur === undefined || seenAt > cur) this.syncState.set(k, seenAt);
  }

  lastSeen(agentId: string, peerId: string): string | undefined {
    return this.syncState.get(`${agentId}\n${peerId}`);
  }

  clock(agentId: string): { entries: Record<string, string> } {
    const entries: Record<string, string> = {};
    for (const [k, v] of this.syncState) {
      const [a, p] = k.split('\n');
      if (a === agentId) entries[p!] = v;
    }
    return { entries };
  }

  /**
   * src/storage/mod.rs memories_updated_since: `updated_at > since` by string comparison
   * (no since: all), ORDER BY updated_at ASC (ties in rowid order), LIMIT. It selects 15
   * columns only, so row_to_memory fills the rest with defaults: reflection_depth 0,
   * memory_kind observation, citations [], confidence_source caller_provided, version 1, no
   * entity_id/persona_version/source_uri/source_span/confidence_signals/confidence_decayed_at.
   */
  updatedSince(since: string | undefined, limit: number): UpMemory[] {
    return [...this.memories.values()]
      .filter((m) => since === undefined || m.updated_at > since)
      .sort((a, b) => (a.updated_at < b.updated_at ? -1 : a.updated_at > b.updated_at ? 1 : a.seq - b.seq))
      .slice(0, limit)
      .map((m) => {
        const row: UpMemory = {
          id: m.id,
          tier: m.tier,
          namespace: m.namespace,
          title: m.title,
          content: m.content,
          tags: m.tags,
          priority: m.priority,
          confidence: m.confidence,
          source: m.source,
          access_count: m.access_count,
          created_at: m.created_at,
          updated_at: m.updated_at,
          metadata: m.metadata,
          reflection_depth: 0,
          memory_kind: 'observation',
          citations: [],
          confidence_source: 'caller_provided',
          version: 1,
        };
        if (m.last_accessed_at !== undefined) row.last_accessed_at = m.last_accessed_at;
        if (m.expires_at !== undefined) row.expires_at = m.expires_at;
        return row;
      });
  }
}
