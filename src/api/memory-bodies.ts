import { z } from 'zod';
import { LIMITS, SERVER_FIELDS, SOURCES, TIERS } from '../memory/model.js';
import { CONFIDENCE_SOURCES, MEMORY_KINDS, SCOPES } from '../memory/rules.js';

/*
 * The shapes of the memory write bodies, as the API documents and checks them (body.ts
 * checkBody). Types, required fields and the static limits only, never stricter than the
 * field rules of memory/rules.ts, which stay the authority for every deeper rule (trimmed
 * lengths, namespace segments, control characters, ...) and for the error codes.
 */

const INT32 = { min: -2_147_483_648, max: 2_147_483_647 } as const;
const timestamp = z.string().meta({ format: 'date-time', description: 'RFC 3339' });
const optionalNull = <T extends z.ZodType>(s: T) => s.nullable().optional();
/** A key the node owns: refused with READ_ONLY_FIELD. */
const readOnly = z.never().optional().meta({ description: 'set by the server; refused (READ_ONLY_FIELD)' });

const id = z
  .string()
  .regex(/^[A-Za-z0-9_:.@-]{1,128}$/)
  .meta({ description: '1-128 bytes of [A-Za-z0-9_:.@-], no "..", not "."' });

/** Memory fields a client may write, with the defaults of docs/api.md where absent. */
const writable = {
  tier: z.enum(TIERS).meta({ description: 'default mid' }),
  namespace: z.string().min(1).meta({ description: `default global; trimmed at most ${LIMITS.namespaceChars} characters, at most ${LIMITS.namespaceDepth} "/" segments, no spaces or control characters` }),
  title: z.string().meta({ description: `trimmed: non-empty, at most ${LIMITS.titleChars} characters, no control characters` }),
  content: z.string().min(1).meta({ description: `not only whitespace, at most ${LIMITS.contentBytes} UTF-8 bytes, no control characters but \\n and \\t` }),
  tags: z.array(z.string()).max(LIMITS.tags).meta({ description: `each trimmed non-empty, at most ${LIMITS.tagBytes} bytes` }),
  priority: z.number().int().min(1).max(10).meta({ description: 'default 5' }),
  confidence: z.number().min(0).max(1).meta({ description: 'default 1.0' }),
  source: z.enum(SOURCES).meta({ description: 'default api' }),
  metadata: optionalNull(z.record(z.string(), z.unknown()).meta({ description: `at most ${LIMITS.metadataBytes} bytes serialized, nested at most ${LIMITS.metadataDepth} levels` })),
  expires_at: optionalNull(timestamp),
  // Typed optional fields of upstream's Memory (memory/rules.ts checkTypedOptionalFields).
  memory_kind: optionalNull(z.enum(MEMORY_KINDS)),
  confidence_source: optionalNull(z.enum(CONFIDENCE_SOURCES)),
  reflection_depth: optionalNull(z.number().int().min(INT32.min).max(INT32.max)),
  persona_version: optionalNull(z.number().int().min(INT32.min).max(INT32.max)),
  entity_id: optionalNull(z.string()),
  source_uri: optionalNull(z.string().meta({ description: `uri:, doc: or file: with a payload, at most ${LIMITS.sourceUriBytes} bytes` })),
  source_span: optionalNull(z.object({ start: z.number().int().min(0), end: z.number().int().min(0) }).meta({ description: 'start < end' })),
  citations: optionalNull(z.array(z.object({ uri: z.string(), accessed_at: z.string(), hash: optionalNull(z.string()), span: z.unknown().optional() })).max(LIMITS.citations)),
  confidence_signals: optionalNull(z.record(z.string(), z.unknown())),
} as const;

const serverOwned = Object.fromEntries(SERVER_FIELDS.map((k) => [k, readOnly])) as Record<(typeof SERVER_FIELDS)[number], typeof readOnly>;

/** POST /api/v1/memories (and each item of a bulk create): title and content required; unknown keys are kept. */
export const createMemoryBody = z
  .object({
    id: id.optional().meta({ description: 'default a random UUID' }),
    ...writable,
    tier: writable.tier.optional(),
    namespace: writable.namespace.optional(),
    tags: writable.tags.optional(),
    priority: writable.priority.optional(),
    confidence: writable.confidence.optional(),
    source: writable.source.optional(),
    agent_id: optionalNull(z.string()).meta({ description: 'the author when no X-Agent-Id header is sent' }),
    ttl_secs: optionalNull(z.number().int().min(1).max(LIMITS.ttlSecs)),
    scope: optionalNull(z.enum(SCOPES)),
    ...serverOwned,
  })
  .catchall(z.unknown())
  .meta({
    id: 'CreateMemory',
    description: 'A new memory; unknown keys are kept and replicated as they came.',
    examples: [{ title: 'Deploy order', content: 'Run the migrations before starting the API.', namespace: 'team/platform', tags: ['ops'], tier: 'long' }],
  });

/** PUT /api/v1/memories/{id}: present keys replace, null clears an optional key. */
export const updateMemoryBody = z
  .object({
    id: id.optional().meta({ description: 'if present, must be the memory\'s own id' }),
    tier: writable.tier.optional(),
    namespace: writable.namespace.optional(),
    title: writable.title.optional(),
    content: writable.content.optional(),
    tags: writable.tags.optional(),
    priority: writable.priority.optional(),
    confidence: writable.confidence.optional(),
    source: writable.source.optional(),
    metadata: writable.metadata,
    expires_at: writable.expires_at,
    memory_kind: writable.memory_kind,
    confidence_source: writable.confidence_source,
    reflection_depth: writable.reflection_depth,
    persona_version: writable.persona_version,
    entity_id: writable.entity_id,
    source_uri: writable.source_uri,
    source_span: writable.source_span,
    citations: writable.citations,
    confidence_signals: writable.confidence_signals,
    agent_id: readOnly,
    ttl_secs: readOnly,
    scope: readOnly,
    ...serverOwned,
  })
  .catchall(z.unknown())
  .meta({ id: 'UpdateMemory', description: 'Names at least one field; unknown keys are set (null removes them).', examples: [{ content: 'Run the migrations, then start the API.', tags: ['ops', 'deploy'] }] });

export const BULK_MAX = 1000;

const bulkOf = <T extends z.ZodType>(item: T) => z.union([z.array(item).max(BULK_MAX), z.object({ memories: z.array(item).max(BULK_MAX) }).catchall(z.unknown())]);

/** POST /api/v1/memories/bulk as documented: up to 1000 create bodies, bare or under `memories`. */
export const bulkBody = bulkOf(createMemoryBody).meta({ description: `at most ${BULK_MAX} items; an invalid item is reported in \`errors\`, the others are created` });
/** What the bulk route checks as a whole; each item is then checked as createMemoryBody. */
export const bulkEnvelope = bulkOf(z.unknown());
