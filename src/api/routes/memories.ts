import { Hono, type Context } from 'hono';
import { ApiError, ValidationError, badRequest, notFound } from '../../errors.js';
import { checkUpdate } from '../../governance.js';
import { applyUpdate, buildNewMemory } from '../../memory/input.js';
import { TIERS, validateAgentId, validateNamespace, validateTier, type Memory } from '../../memory/model.js';
import { nowMicros } from '../../memory/time.js';
import type { FeedPosition } from '../../store/feed.js';
import { GroupCommit } from '../../store/group-commit.js';
import { deleteMemory, getMemory, insertMemories, listMemories, updateMemory } from '../../store/memories.js';
import { linksOf, wireLink } from '../../store/archive-links.js';
import { readBatchBody } from '../body-slots.js';
import { checkBody, parseJsonBytes, readJson, requireJsonBody } from '../body.js';
import { intParam, parseQuery, pathId, timestampParam } from '../query.js';
import { hasPeers, type AppDeps } from '../deps.js';
import { quorumFailure } from '../quorum-failure.js';
import { BULK_MAX, bulkBody, bulkEnvelope, createMemoryBody, updateMemoryBody } from '../memory-bodies.js';
import { HEADERS, documented } from '../openapi/describe.js';
import { AGENT_HEADER_CODES, BATCH_BODY_CODES, GOVERNANCE_CODES, JSON_BODY_CODES, MEMORY_INPUT_CODES, NOT_FOUND_CODES, PATH_ID_CODES, QUERY_CODES, QUORUM_CODES, merge } from '../openapi/error-codes.js';
import { link, memory as memorySchema, looseObject, quorumAcks } from '../openapi/responses.js';
import { z } from 'zod';

const LIST_DEFAULT = 20;
const LIST_MAX = 1000;
const OFFSET_MAX = 1_000_000;

function callerAgentId(c: Context): string | undefined {
  const h = c.req.header('x-agent-id');
  return h === undefined ? undefined : validateAgentId(h.trim(), 'X-Agent-Id');
}

const listQuery = {
  // Read as given and checked by the memory field rules (below), not by this shape.
  namespace: z.string().optional().meta({ description: 'only this namespace' }),
  tier: z.string().optional().meta({ enum: [...TIERS] }),
  tags: z.string().optional().meta({ description: 'comma-separated; memories with any of them (at most 50 of at most 128 bytes)' }),
  since: timestampParam,
  until: timestampParam,
  // Over the maximum is clamped (a list is a page, not a promise of a count).
  limit: intParam({ fallback: LIST_DEFAULT, min: 1, max: LIST_MAX, digits: 10, clamp: 'above' }),
  offset: intParam({ fallback: 0, min: 0, max: OFFSET_MAX, digits: 10, clamp: 'none' }),
};

/** `If-Match: 3`, `"3"` or `W/"3"`; anything else is a 400. */
function ifMatchVersion(c: Context): number | undefined {
  const raw = c.req.header('if-match');
  if (raw === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(raw);
  if (!m) throw badRequest('INVALID_IF_MATCH', 'If-Match must be a memory version number');
  return Number(m[1]);
}

export function memoryRoutes(deps: AppDeps) {
  const { database, config, replication, metrics, audit } = deps;
  const db = database.db;
  const app = new Hono();

  /**
   * Governance: a refused write is a 403 with a stable code and an audit event. An update
   * is judged by the stored namespace too (`stored`), so it cannot move a memory out of a
   * namespace this node does not let anyone write.
   */
  const govern = (m: Memory, actor: string | undefined, op: string, stored?: Memory) => {
    const r = checkUpdate(deps.policy, stored, m);
    if (!r) return;
    audit.record({ kind: 'governance.refused', actor: actor ?? 'anonymous', subject: m.id, details: { via: op, code: r.code, rule: r.rule, namespace: m.namespace } });
    throw new ApiError(403, 'GOVERNANCE_REFUSED', r.reason, { rule: r.rule, reason_code: r.code });
  };
  const committed = (actor: string | undefined, op: string, ids: string[]) => {
    if (config.audit.level === 'all' && ids.length > 0) audit.record({ kind: 'memory.committed', actor: actor ?? 'anonymous', details: { op, ids: ids.slice(0, 100), count: ids.length } });
  };

  const replicate = (position: FeedPosition | null) => replication.afterCommit(position);
  const creates = new GroupCommit((docs) => insertMemories(db, docs), { maxBatch: config.writeBatch.max, maxInFlight: config.writeBatch.inFlight, onBatch: (n) => metrics.writeBatchSize.observe(n) });

  const memoryWithLinks = looseObject({ memory: memorySchema, links: z.array(link) });

  app.post(
    '/api/v1/memories',
    documented({
      summary: 'Create a memory',
      tag: 'memories',
      access: 'api-key',
      headers: [HEADERS.agentId],
      body: { schema: createMemoryBody },
      responses: { 201: { description: 'committed (and, with peers, acked by the write quorum)', schema: looseObject({ id: z.string(), tier: z.string(), namespace: z.string(), title: z.string(), agent_id: z.string(), quorum_acks: quorumAcks }) } },
      errors: merge(AGENT_HEADER_CODES, JSON_BODY_CODES, MEMORY_INPUT_CODES, GOVERNANCE_CODES, { 409: ['ID_CONFLICT'] }, QUORUM_CODES),
    }),
    async (c) => {
      const agentId = callerAgentId(c);
      // buildNewMemory runs the NUL/key/number checks over the whole body before anything else.
      const body = await readJson(c, config.limits.maxBodyBytes, { deepChecks: false });
      const memory = checkBody(createMemoryBody, body, () => buildNewMemory(body, { agentId, nowMicros: nowMicros(), maxBytes: config.limits.memoryMaxBytes, tierTtls: config.tierTtlSecs }));
      govern(memory, agentId, 'create');
      const outcome = await creates.create(memory);
      if (!outcome.created) throw new ApiError(409, 'ID_CONFLICT', `memory ${memory.id} already exists`, { id: memory.id });
      metrics.memoryWrites.inc({ op: 'create' });
      committed(agentId, 'create', [memory.id]);
      const q = await replicate(outcome.position);
      if (!q.met) return quorumFailure(c, q, memory.id);
      const res: Record<string, unknown> = { id: memory.id, tier: memory.tier, namespace: memory.namespace, title: memory.title, agent_id: memory.metadata.agent_id };
      if (hasPeers(deps)) res.quorum_acks = q.acks;
      return c.json(res, 201);
    },
  );

  app.post(
    '/api/v1/memories/bulk',
    documented({
      summary: 'Create up to 1000 memories',
      description: 'Each item is checked like a single create; refused items are listed in `errors` (with their index and code), the others are created. No quorum wait: delivery proceeds in the background.',
      tag: 'memories',
      access: 'api-key',
      headers: [HEADERS.agentId],
      body: { schema: bulkBody },
      responses: { 200: { description: 'what was created, and why the rest was not', schema: looseObject({ created: z.number().int(), ids: z.array(z.string()), errors: z.array(looseObject({ index: z.number().int(), code: z.string(), error: z.string(), id: z.string().optional() })) }) } },
      errors: merge(AGENT_HEADER_CODES, BATCH_BODY_CODES, { 400: ['INVALID_BODY', 'BULK_TOO_LARGE'] }),
    }),
    async (c) => {
      const agentId = callerAgentId(c);
      requireJsonBody(c);
      const body = parseJsonBytes(await readBatchBody(c, config));
      const items = checkBody(bulkEnvelope, body, () => bulkItems(body));
      const errors: Array<{ index: number; code: string; error: string; id?: string }> = [];
      const valid: Memory[] = [];
      const indexOf = new Map<string, number>();
      const seen = new Set<string>();
      items.forEach((item, index) => {
        try {
          const m = checkBody(createMemoryBody, item, () => buildNewMemory(item, { agentId, nowMicros: nowMicros(), maxBytes: config.limits.memoryMaxBytes, tierTtls: config.tierTtlSecs }));
          govern(m, agentId, 'bulk');
          if (seen.has(m.id)) throw new ValidationError('id', `duplicate id ${m.id} in this request`, 'ID_CONFLICT');
          seen.add(m.id);
          indexOf.set(m.id, index);
          valid.push(m);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          errors.push({ index, code: err.code, error: err.message });
        }
      });
      const { created, conflicts, position } = await insertMemories(db, valid);
      for (const id of conflicts) errors.push({ index: indexOf.get(id)!, code: 'ID_CONFLICT', error: `memory ${id} already exists`, id });
      errors.sort((a, b) => a.index - b.index);
      metrics.memoryWrites.inc({ op: 'create' }, created.length);
      committed(agentId, 'bulk', created.map((m) => m.id));
      // Bulk imports do not wait for a quorum: delivery is durable and proceeds in the background.
      if (position) void replication.afterCommit(position).catch(() => {});
      return c.json({ created: created.length, ids: created.map((m) => m.id), errors }, 200);
    },
  );

  app.get(
    '/api/v1/memories',
    documented({
      summary: 'List memories (newest first)',
      tag: 'memories',
      access: 'api-key',
      query: listQuery,
      responses: { 200: { description: 'a page of memories', schema: looseObject({ memories: z.array(memorySchema), count: z.number().int() }) } },
      errors: QUERY_CODES,
    }),
    async (c) => {
      const tagsRaw = c.req.query('tags');
      const tags = tagsRaw ? tagsRaw.split(',').map((t) => t.trim()).filter(Boolean) : undefined;
      // eslint-disable-next-line no-control-regex
      if (tags && (tags.length > 50 || tags.some((t) => Buffer.byteLength(t) > 128 || /[\u0000-\u001F\u007F]/.test(t)))) {
        throw badRequest('INVALID_QUERY', 'tags: at most 50 tags of at most 128 bytes, no control characters', { field: 'tags' });
      }
      const q = parseQuery(c, listQuery);
      const { namespace, tier } = q;
      const filters = {
        namespace: namespace ? validateQuery('namespace', () => validateNamespace(namespace)) : undefined,
        tier: tier ? validateQuery('tier', () => validateTier(tier)) : undefined,
        tags,
        since: q.since,
        until: q.until,
        limit: q.limit,
        offset: q.offset,
      };
      const memories = await listMemories(db, filters);
      return c.json({ memories, count: memories.length });
    },
  );

  app.get(
    '/api/v1/memories/:id',
    documented({ summary: 'Read a memory and its links', tag: 'memories', access: 'api-key', responses: { 200: { description: 'the memory', schema: memoryWithLinks } }, errors: merge(PATH_ID_CODES, NOT_FOUND_CODES) }),
    async (c) => {
      const memory = await getMemory(db, pathId(c));
      if (!memory) throw notFound('memory not found');
      const links = await linksOf(db, memory.id);
      return c.json({ memory, links: links.map((l) => ({ ...wireLink(l), attest_level: l.attest_level })) });
    },
  );

  app.put(
    '/api/v1/memories/:id',
    documented({
      summary: 'Update a memory',
      tag: 'memories',
      access: 'api-key',
      headers: [HEADERS.ifMatch, HEADERS.agentId],
      body: { schema: updateMemoryBody },
      responses: { 200: { description: 'the updated memory (version + 1)', schema: looseObject({ memory: memorySchema, quorum_acks: quorumAcks }) } },
      errors: merge(PATH_ID_CODES, { 400: ['INVALID_IF_MATCH', 'EMPTY_UPDATE'] }, AGENT_HEADER_CODES, JSON_BODY_CODES, MEMORY_INPUT_CODES, GOVERNANCE_CODES, NOT_FOUND_CODES, { 409: ['VERSION_CONFLICT'] }, QUORUM_CODES),
    }),
    async (c) => {
      const id = pathId(c);
      const expected = ifMatchVersion(c);
      const body = await readJson(c, config.limits.maxBodyBytes);
      const agentId = callerAgentId(c);
      const r = await updateMemory(
        db,
        id,
        (cur, floor) => {
          const next = checkBody(updateMemoryBody, body, () => applyUpdate(cur, body, { nowMicros: Math.max(nowMicros(), floor), maxBytes: config.limits.memoryMaxBytes }));
          govern(next, agentId, 'update', cur);
          return next;
        },
        expected,
      );
      if (r.kind === 'not_found') throw notFound('memory not found');
      if (r.kind === 'version_conflict') throw new ApiError(409, 'VERSION_CONFLICT', `If-Match version ${expected} does not match current version ${r.current}`, { current_version: r.current });
      metrics.memoryWrites.inc({ op: 'update' });
      committed(agentId, 'update', [id]);
      const q = await replicate(r.position);
      if (!q.met) return quorumFailure(c, q, id);
      return c.json({ memory: r.memory, ...(hasPeers(deps) ? { quorum_acks: q.acks } : {}) });
    },
  );

  app.delete(
    '/api/v1/memories/:id',
    documented({ summary: 'Delete a memory (a tombstone replicates)', tag: 'memories', access: 'api-key', headers: [HEADERS.agentId], responses: { 200: { description: 'deleted', schema: looseObject({ deleted: z.literal(true), quorum_acks: quorumAcks }) } }, errors: merge(PATH_ID_CODES, AGENT_HEADER_CODES, NOT_FOUND_CODES, QUORUM_CODES) }),
    async (c) => {
      const id = pathId(c);
      const agentId = callerAgentId(c);
      const r = await deleteMemory(db, id, nowMicros());
      if (r.kind !== 'ok') throw notFound('memory not found');
      metrics.memoryWrites.inc({ op: 'delete' });
      audit.record({ kind: 'memory.deleted', actor: agentId ?? 'anonymous', subject: id, details: { via: 'api', namespace: r.memory.namespace, title: r.memory.title } });
      const q = await replicate(r.position);
      if (!q.met) return quorumFailure(c, q, id);
      return c.json({ deleted: true, ...(hasPeers(deps) ? { quorum_acks: q.acks } : {}) });
    },
  );

  return app;
}

/** The bulk body's items; the refusals the bulk route has always given for its envelope. */
function bulkItems(body: unknown): unknown[] {
  const items = Array.isArray(body) ? body : (body as { memories?: unknown })?.memories;
  if (!Array.isArray(items)) throw badRequest('INVALID_BODY', 'expected a JSON array of memories (or {"memories": [...]})');
  if (items.length > BULK_MAX) throw badRequest('BULK_TOO_LARGE', `bulk create is limited to ${BULK_MAX} memories per request`, { limit: BULK_MAX });
  return items;
}

function validateQuery<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ValidationError) throw badRequest('INVALID_QUERY', err.message, { field });
    throw err;
  }
}
