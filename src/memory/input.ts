import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { CODES, validateScope, validateTtlSecs } from './rules.js';
import {
  SERVER_FIELDS,
  assertSafeJson,
  validateAgentId,
  validateConfidence,
  validateContent,
  validateId,
  validateMetadata,
  validateNamespace,
  validatePriority,
  validateSource,
  validateTags,
  validateTier,
  validateTimestampField,
  validateTitle,
  finishBuiltMemory,
  validateMemory,
  type Memory,
  type Tier,
} from './model.js';
import { formatTimestamp, parseTimestamp } from './time.js';
import { tierExpiry, type TierTtls } from './expiry.js';

function asObject(input: unknown, what: string): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new ValidationError(what, 'must be a JSON object', 'INVALID_BODY');
  return input as Record<string, unknown>;
}

function refuseServerFields(body: Record<string, unknown>): void {
  for (const k of SERVER_FIELDS) {
    if (body[k] !== undefined) throw new ValidationError(k, 'is set by the server and cannot be written', 'READ_ONLY_FIELD');
  }
}

// Keys of the create body that are inputs, not memory fields.
const CREATE_ONLY = new Set(['agent_id', 'ttl_secs', 'scope']);

/**
 * A new memory from a create request (upstream src/validate.rs: validate_create, plus
 * validate_memory on the built row): docs/wire.md defaults (tier mid, namespace global,
 * priority 5, confidence 1.0, source api), caller identity into metadata.agent_id,
 * expires_at from ttl_secs or the tier TTL. Unknown keys are kept.
 */
export function buildNewMemory(input: unknown, ctx: { agentId: string | undefined; nowMicros: number; maxBytes?: number; tierTtls?: TierTtls }): Memory {
  const body = asObject(input, 'body');
  assertSafeJson(body);
  refuseServerFields(body);
  const now = formatTimestamp(ctx.nowMicros);
  const tier: Tier = body.tier === undefined ? 'mid' : validateTier(body.tier);
  const metadata = body.metadata === undefined || body.metadata === null ? {} : { ...validateMetadata(body.metadata) };
  const agentId = ctx.agentId ?? (body.agent_id !== undefined ? validateAgentId(body.agent_id) : undefined) ?? (typeof metadata.agent_id === 'string' ? validateAgentId(metadata.agent_id, 'metadata.agent_id') : 'anonymous');
  metadata.agent_id = agentId;
  // upstream src/validate.rs: validate_scope.
  if (body.scope !== undefined && body.scope !== null) metadata.scope = validateScope(body.scope);
  let expiresAt: string | undefined;
  // upstream src/validate.rs: validate_ttl_secs; validate_expires_at (on create, not in the past).
  if (body.ttl_secs !== undefined && body.ttl_secs !== null) validateTtlSecs(body.ttl_secs);
  if (body.expires_at !== undefined && body.expires_at !== null) {
    expiresAt = validateTimestampField('expires_at', body.expires_at, CODES.expiresAt);
    if (parseTimestamp(expiresAt)! < ctx.nowMicros) throw new ValidationError('expires_at', 'must not be in the past', CODES.expiresAt);
  } else if (body.ttl_secs !== undefined && body.ttl_secs !== null) expiresAt = formatTimestamp(ctx.nowMicros + (body.ttl_secs as number) * 1e6);
  else expiresAt = tierExpiry(tier, ctx.nowMicros, ctx.tierTtls);

  const memory: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!CREATE_ONLY.has(k) && v !== null && v !== undefined) memory[k] = v;
  Object.assign(memory, {
    id: body.id === undefined ? randomUUID() : validateId(body.id),
    tier,
    namespace: body.namespace === undefined ? 'global' : validateNamespace(body.namespace),
    title: validateTitle(body.title),
    content: validateContent(body.content),
    tags: body.tags === undefined ? [] : validateTags(body.tags),
    priority: body.priority === undefined ? 5 : validatePriority(body.priority),
    confidence: body.confidence === undefined ? 1.0 : validateConfidence(body.confidence),
    source: body.source === undefined ? 'api' : validateSource(body.source),
    access_count: 0,
    created_at: now,
    updated_at: now,
    metadata: validateMetadata(metadata),
    version: 1,
  });
  if (expiresAt !== undefined) memory.expires_at = expiresAt;
  else delete memory.expires_at;
  // The rest of the receive-side rules (typed optional keys such as memory_kind or
  // citations, the size cap): memfed commits only rows upstream accepts. The core fields
  // above went through the same rules already.
  return finishBuiltMemory(memory, { ...(ctx.maxBytes !== undefined ? { maxBytes: ctx.maxBytes } : {}) });
}

/**
 * Applies a PUT body to an existing memory: present keys replace, `null` clears an
 * optional key, version and updated_at advance. Unknown keys are kept like on create.
 */
export function applyUpdate(existing: Memory, input: unknown, ctx: { nowMicros: number; maxBytes?: number }): Memory {
  const body = asObject(input, 'body');
  assertSafeJson(body);
  refuseServerFields(body);
  if (body.id !== undefined && body.id !== existing.id) throw new ValidationError('id', 'cannot be changed', 'READ_ONLY_FIELD');
  const keys = Object.keys(body).filter((k) => k !== 'id');
  if (keys.length === 0) throw new ValidationError('body', 'names no field to update', 'EMPTY_UPDATE');
  const next: Record<string, unknown> = { ...existing };
  for (const k of keys) {
    const v = body[k];
    switch (k) {
      case 'tier': next.tier = validateTier(v); break;
      case 'namespace': next.namespace = validateNamespace(v); break;
      case 'title': next.title = validateTitle(v); break;
      case 'content': next.content = validateContent(v); break;
      case 'tags': next.tags = validateTags(v); break;
      case 'priority': next.priority = validatePriority(v); break;
      case 'confidence': next.confidence = validateConfidence(v); break;
      case 'source': next.source = validateSource(v); break;
      case 'metadata': next.metadata = validateMetadata(v === null ? {} : v); break;
      // upstream src/validate.rs: validate_update checks expires_at's format only (a past date is allowed).
      case 'expires_at': if (v === null) delete next.expires_at; else next.expires_at = validateTimestampField('expires_at', v, CODES.expiresAt); break;
      case 'agent_id': case 'ttl_secs': case 'scope':
        throw new ValidationError(k, 'cannot be changed by an update', 'READ_ONLY_FIELD');
      default:
        if (v === null) delete next[k];
        else next[k] = v;
    }
  }
  if (next.metadata && typeof next.metadata === 'object' && (existing.metadata as Record<string, unknown>).agent_id !== undefined) {
    // The author stays the author: an update never rewrites agent_id.
    (next.metadata as Record<string, unknown>).agent_id = (existing.metadata as Record<string, unknown>).agent_id;
  }
  next.version = existing.version + 1;
  next.updated_at = formatTimestamp(ctx.nowMicros);
  return validateMemory(next, { ...(ctx.maxBytes !== undefined ? { maxBytes: ctx.maxBytes } : {}) });
}
