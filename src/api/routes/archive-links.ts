import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { ApiError, badRequest, notFound } from '../../errors.js';
import { LINK_RELATIONS, linkTripleProblem, type LinkRelation } from '../../memory/link.js';
import { isValidId, validateNamespace } from '../../memory/model.js';
import { nowMicros } from '../../memory/time.js';
import { archiveMemories, createLink, linksOf, listArchived, removeLink, restoreMemory, wireLink } from '../../store/archive-links.js';
import { getStored } from '../../store/memories.js';
import type { FeedPosition } from '../../store/feed.js';
import { readJson } from '../body.js';
import { INVALID_ID_MESSAGE, intParam, parseQuery, pathId } from '../query.js';
import { hasPeers, type AppDeps } from '../deps.js';
import { quorumFailure } from '../quorum-failure.js';
import { documented } from '../openapi/describe.js';
import { JSON_BODY_CODES, NOT_FOUND_CODES, PATH_ID_CODES, QUERY_CODES, QUORUM_CODES, merge } from '../openapi/error-codes.js';
import { link, memory, looseObject, quorumAcks } from '../openapi/responses.js';

/** upstream src/handlers/archive.rs: at most MAX_BULK_SIZE ids per archive request. */
const ARCHIVE_IDS_MAX = 1000;


const archiveBody = z.object({ ids: z.array(z.string()).max(ARCHIVE_IDS_MAX), reason: z.string().max(512).optional().meta({ description: 'default "archive"' }) }).strict();

/**
 * upstream src/models/link.rs `LinkBody`: canonical names with the S82 aliases
 * (from / to / rel_type); relation defaults to related_to. Unknown fields are refused
 * (upstream src/handlers/links.rs `unknown_link_body_fields`).
 */
const linkBody = z
  .object({
    source_id: z.string().optional(),
    from: z.string().optional(),
    target_id: z.string().optional(),
    to: z.string().optional(),
    relation: z.string().optional(),
    rel_type: z.string().optional(),
  })
  .strict()
  .meta({ description: `source_id (or from), target_id (or to), relation (or rel_type: one of ${LINK_RELATIONS.join(', ')}; default related_to)` });

const LINK_BODY_CODES = merge(JSON_BODY_CODES, { 400: ['UNKNOWN_FIELD', 'INVALID_BODY', 'INVALID_RELATION', 'SELF_LINK', 'INVALID_ID'] });
const archiveQuery = {
  limit: intParam({ fallback: 50, min: 1, max: 1000, digits: 10, clamp: 'above' }),
  offset: intParam({ fallback: 0, min: 0, max: 1_000_000, digits: 10, clamp: 'none' }),
  // Checked by the namespace rule (memory/rules.ts), not by this shape.
  namespace: z.string().optional().meta({ description: 'only this namespace' }),
};

function parseLinkBody(raw: unknown): { source_id: string; target_id: string; relation: LinkRelation } {
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    const unknown = Object.keys(raw).filter((k) => !Object.hasOwn(linkBody.shape, k)).sort();
    if (unknown.length > 0) throw badRequest('UNKNOWN_FIELD', `unknown field(s): ${unknown.join(', ')}`, { fields: unknown });
  }
  const r = linkBody.safeParse(raw);
  if (!r.success) throw badRequest('INVALID_BODY', `link body: ${r.error.issues[0]?.path.join('.') || 'body'} ${r.error.issues[0]?.message ?? 'is invalid'}`);
  const source = r.data.source_id ?? r.data.from ?? '';
  const target = r.data.target_id ?? r.data.to ?? '';
  const relation = r.data.relation ?? r.data.rel_type ?? 'related_to';
  const problem = linkTripleProblem(source, target, relation);
  if (problem?.startsWith('invalid relation')) throw badRequest('INVALID_RELATION', problem, { got: relation, allowed: LINK_RELATIONS });
  if (problem) throw badRequest(problem === 'cannot link a memory to itself' ? 'SELF_LINK' : 'INVALID_ID', problem);
  return { source_id: source, target_id: target, relation: relation as LinkRelation };
}

/** Archive, restore and links, as upstream routes them (src/lib.rs, src/handlers/archive.rs, links.rs). */
export function archiveLinkRoutes(deps: AppDeps) {
  const { database, config, replication, audit } = deps;
  const db = database.db;
  const app = new Hono();

  /** Commit stands; a missed quorum is the same 503 as every write (docs/wire.md). */
  const replicate = async (c: Context, position: FeedPosition | null, id: string) => {
    const q = await replication.afterCommit(position);
    return q.met ? { acks: q.acks } : { failure: quorumFailure(c, q, id) };
  };
  const committed = (c: Context, op: string, ids: string[], extra: Record<string, unknown> = {}) => {
    if (config.audit.level === 'all' && ids.length > 0) audit.record({ kind: 'memory.committed', actor: c.req.header('x-agent-id')?.trim() || 'anonymous', details: { op, ids: ids.slice(0, 100), count: ids.length, ...extra } });
  };

  app.get(
    '/api/v1/archive',
    documented({ summary: 'List archived memories', tag: 'archive and links', access: 'api-key', query: archiveQuery, responses: { 200: { description: 'a page of archived memories', schema: looseObject({ archived: z.array(memory.extend({ archived_at: z.string(), archive_reason: z.string().nullable() })), count: z.number().int() }) } }, errors: QUERY_CODES }),
    async (c) => {
      const q = parseQuery(c, archiveQuery);
      const ns = q.namespace;
      let namespace: string | undefined;
      if (ns) {
        try {
          namespace = validateNamespace(ns);
        } catch (err) {
          throw badRequest('INVALID_QUERY', (err as Error).message, { field: 'namespace' });
        }
      }
      const archived = await listArchived(db, { ...(namespace !== undefined ? { namespace } : {}), limit: q.limit, offset: q.offset });
      return c.json({ archived, count: archived.length });
    },
  );

  app.post(
    '/api/v1/archive',
    documented({
      summary: 'Archive memories (up to 1000 ids)',
      tag: 'archive and links',
      access: 'api-key',
      body: { schema: archiveBody },
      responses: { 200: { description: 'which ids were archived and which were not found', schema: looseObject({ archived: z.array(z.string()), missing: z.array(z.string()), count: z.number().int(), reason: z.string(), quorum_acks: quorumAcks }) } },
      errors: merge(JSON_BODY_CODES, { 400: ['BULK_TOO_LARGE', 'INVALID_BODY', 'INVALID_ID'] }, QUORUM_CODES),
    }),
    async (c) => {
      const raw = await readJson(c, config.limits.maxBodyBytes);
      if (raw && typeof raw === 'object' && Array.isArray((raw as { ids?: unknown }).ids) && (raw as { ids: unknown[] }).ids.length > ARCHIVE_IDS_MAX) {
        throw badRequest('BULK_TOO_LARGE', `archive limited to ${ARCHIVE_IDS_MAX} ids per request`, { limit: ARCHIVE_IDS_MAX });
      }
      const r = archiveBody.safeParse(raw);
      if (!r.success) throw badRequest('INVALID_BODY', `archive body: ${r.error.issues[0]?.path.join('.') || 'body'} ${r.error.issues[0]?.message ?? 'is invalid'}`);
      const bad = r.data.ids.find((id) => !isValidId(id));
      if (bad !== undefined) throw badRequest('INVALID_ID', `invalid id ${JSON.stringify(String(bad).slice(0, 130))}: ${INVALID_ID_MESSAGE}`);
      const reason = r.data.reason ?? 'archive';
      const out = await archiveMemories(db, r.data.ids, nowMicros(), reason);
      committed(c, 'archive', out.archived, { reason });
      const q = await replicate(c, out.position, out.archived[0] ?? '');
      if (q.failure) return q.failure;
      return c.json({ archived: out.archived, missing: out.missing, count: out.archived.length, reason, ...(hasPeers(deps) ? { quorum_acks: q.acks } : {}) });
    },
  );

  app.post(
    '/api/v1/archive/:id/restore',
    documented({ summary: 'Restore an archived memory', tag: 'archive and links', access: 'api-key', responses: { 200: { description: 'restored', schema: looseObject({ restored: z.literal(true), id: z.string(), quorum_acks: quorumAcks }) } }, errors: merge(PATH_ID_CODES, NOT_FOUND_CODES, QUORUM_CODES) }),
    async (c) => {
      const id = pathId(c);
      const out = await restoreMemory(db, id, nowMicros());
      if (!out.restored) throw new ApiError(404, 'NOT_FOUND', 'not found in archive');
      committed(c, 'restore', [id]);
      const q = await replicate(c, out.position, id);
      if (q.failure) return q.failure;
      return c.json({ restored: true, id, ...(hasPeers(deps) ? { quorum_acks: q.acks } : {}) });
    },
  );

  app.post(
    '/api/v1/links',
    documented({
      summary: 'Link two memories',
      tag: 'archive and links',
      access: 'api-key',
      body: { schema: linkBody },
      responses: { 201: { description: 'linked (also when the link already existed)', schema: looseObject({ linked: z.literal(true), source_id: z.string(), target_id: z.string(), relation: z.string(), attest_level: z.string(), quorum_acks: quorumAcks }) } },
      errors: merge(LINK_BODY_CODES, NOT_FOUND_CODES, QUORUM_CODES),
    }),
    async (c) => {
      const key = parseLinkBody(await readJson(c, config.limits.maxBodyBytes));
      const out = await createLink(db, key, nowMicros());
      if (out.kind === 'not_found') throw new ApiError(404, 'NOT_FOUND', `${out.which} memory not found`, { [`${out.which}_id`]: out.which === 'source' ? key.source_id : key.target_id });
      if (out.created) committed(c, 'link', [key.source_id], { target_id: key.target_id, relation: key.relation });
      const q = await replicate(c, out.position, key.source_id);
      if (q.failure) return q.failure;
      return c.json({ linked: true, ...key, attest_level: 'unsigned', ...(hasPeers(deps) ? { quorum_acks: q.acks } : {}) }, 201);
    },
  );

  app.delete(
    '/api/v1/links',
    documented({ summary: 'Remove a link', tag: 'archive and links', access: 'api-key', body: { schema: linkBody }, responses: { 200: { description: 'whether a link was removed', schema: looseObject({ deleted: z.boolean(), quorum_acks: quorumAcks }) } }, errors: merge(LINK_BODY_CODES, QUORUM_CODES) }),
    async (c) => {
      const key = parseLinkBody(await readJson(c, config.limits.maxBodyBytes));
      const out = await removeLink(db, key, nowMicros());
      const q = await replicate(c, out.position, key.source_id);
      if (q.failure) return q.failure;
      return c.json({ deleted: out.removed, ...(hasPeers(deps) && out.removed ? { quorum_acks: q.acks } : {}) });
    },
  );

  app.get(
    '/api/v1/links/:id',
    documented({ summary: 'Links of a memory', tag: 'archive and links', access: 'api-key', responses: { 200: { description: 'links from and to the memory', schema: looseObject({ links: z.array(link) }) } }, errors: merge(PATH_ID_CODES, NOT_FOUND_CODES) }),
    async (c) => {
      const id = pathId(c);
      const stored = await getStored(db, id);
      if (!stored || stored.deletedAt !== null) throw notFound('memory not found');
      const links = await linksOf(db, id);
      return c.json({ links: links.map((l) => ({ ...wireLink(l), attest_level: l.attest_level })) });
    },
  );

  return app;
}
