import { z } from 'zod';
import { SOURCES, TIERS } from '../../memory/model.js';

/*
 * Shapes of the success answers, for the document only: routes build these objects in
 * domain code (store/, federation/), so a response schema describes, it does not check.
 * Objects stay open (`catchall`): memories carry unknown keys from newer peers.
 */

const timestamp = z.string().meta({ format: 'date-time' });

/** The memory object of docs/wire.md. */
export const memory = z
  .object({
    id: z.string(),
    tier: z.enum(TIERS),
    namespace: z.string(),
    title: z.string(),
    content: z.string(),
    tags: z.array(z.string()),
    priority: z.number().int(),
    confidence: z.number(),
    source: z.enum(SOURCES),
    access_count: z.number().int(),
    created_at: timestamp,
    updated_at: timestamp,
    last_accessed_at: timestamp.optional(),
    expires_at: timestamp.optional(),
    metadata: z.record(z.string(), z.unknown()),
    version: z.number().int(),
  })
  .catchall(z.unknown())
  .meta({ id: 'Memory' });

export const link = z
  .object({ source_id: z.string(), target_id: z.string(), relation: z.string(), created_at: timestamp.optional(), attest_level: z.string().optional() })
  .catchall(z.unknown())
  .meta({ id: 'Link' });

/** `quorum_acks` is present when the node has peers (docs/api.md, Quorum writes). */
export const quorumAcks = z.number().int().optional().meta({ description: 'acks received, when the node has peers' });

/** An object answer whose fields the route documents in docs/api.md; only the named ones are typed here. */
export const looseObject = (shape: z.ZodRawShape = {}) => z.object(shape).catchall(z.unknown());
