import type { Hono } from 'hono';
import { generateSpecs } from 'hono-openapi';
import { VERSION } from '../../version.js';
import { SECURITY_SCHEMES } from './describe.js';

export const OPENAPI_PATH = '/api/v1/openapi.json';
export const DOCS_PATH = '/api/v1/docs';

const DESCRIPTION = [
  'The HTTP API of a memfed node: memories, archive and links, the federation wire (ai-memory compatible), audit checkpoints and operator tools.',
  'Generated at run time from the routes this node has mounted and the zod schemas they validate with; docs/api.md explains the semantics.',
  'Every refusal is `{"error": message, "code": CODE, ...details}`; each operation lists the codes it can answer.',
  'Admin routes exist only when ADMIN_TOKEN is set. `API_KEY`, when set, is required everywhere but on open routes (security: none).',
].join('\n\n');

const TAGS = [
  { name: 'health', description: 'liveness, readiness, Prometheus metrics' },
  { name: 'memories', description: 'create, read, update, delete memories' },
  { name: 'archive and links', description: 'archive, restore, links between memories' },
  { name: 'federation', description: 'the peer-to-peer wire (docs/wire.md): signed by peers, not used by clients' },
  { name: 'audit', description: 'signed audit checkpoints' },
  { name: 'admin', description: 'operator tools behind ADMIN_TOKEN' },
  { name: 'docs', description: 'this document and its reference page' },
];

/** The OpenAPI 3.1 document of `app`: every route that carries a `documented()` description. */
export async function buildOpenApiDocument(app: Hono): Promise<Record<string, unknown>> {
  const doc = await generateSpecs(app, {
    documentation: {
      openapi: '3.1.0',
      info: { title: 'memfed HTTP API', version: VERSION, description: DESCRIPTION, license: { name: 'Apache-2.0', identifier: 'Apache-2.0' } },
      tags: TAGS,
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    // The document's own path ends in ".json": it is a route like any other.
    excludeStaticFile: false,
    // Routes answer their own INVALID_QUERY / INVALID_BODY refusals, documented per route.
    defaultValidationErrorResponse: false,
  });
  return doc as unknown as Record<string, unknown>;
}
