import type { MiddlewareHandler } from 'hono';
import { describeRoute, resolver, type DescribeRouteOptions } from 'hono-openapi';
import { z } from 'zod';
import { ADMIN_CODES, API_KEY_CODES, DATABASE_CODES, PEER_AUTH_CODES, merge, type ErrorCodes, type ErrorStatus } from './error-codes.js';

/** Who may call a route: nobody needs a credential, the API key, ADMIN_TOKEN, or a signed peer (plus the API key). */
type Parameter = NonNullable<DescribeRouteOptions['parameters']>[number];
type SecurityRequirement = NonNullable<DescribeRouteOptions['security']>[number];

export type Access = 'open' | 'api-key' | 'admin' | 'peer';

export interface RouteDoc {
  summary: string;
  description?: string;
  tag: string;
  access: Access;
  /** The zod shape the route parses its query with (query.ts parseQuery): the same objects. */
  query?: z.ZodRawShape;
  /** Headers the route reads, as OpenAPI parameters. */
  headers?: Parameter[];
  /** The zod schema the route checks its body with (body-schemas.ts checkBody). */
  body?: { schema: z.ZodType; required?: boolean; description?: string };
  /** Success answers by status: a JSON schema, or another media type (e.g. /metrics). */
  responses: Record<number, { description: string; schema?: z.ZodType; media?: string }>;
  /** Refusals by status, in the families of error-codes.ts; access codes are added from `access`. */
  errors?: ErrorCodes;
}

const SECURITY: Record<Access, SecurityRequirement[]> = {
  open: [],
  'api-key': [{ apiKey: [] }, { apiKeyBearer: [] }],
  admin: [{ adminBearer: [] }, { adminBasic: [] }],
  peer: [{ apiKey: [], peerSignature: [] }, { apiKeyBearer: [], peerSignature: [] }],
};

// Open routes (liveness, readiness, the document) answer without throwing on Postgres; the others use it.
const ACCESS_CODES: Record<Access, ErrorCodes> = { open: {}, 'api-key': merge(API_KEY_CODES, DATABASE_CODES), admin: merge(ADMIN_CODES, DATABASE_CODES), peer: merge(API_KEY_CODES, PEER_AUTH_CODES, DATABASE_CODES) };

const STATUS_TEXT: Record<ErrorStatus, string> = {
  400: 'Bad request',
  401: 'Not authenticated',
  403: 'Refused',
  404: 'Not found',
  409: 'Conflict',
  410: 'Gone (start again from a snapshot)',
  413: 'Body too large',
  415: 'Body not JSON',
  422: 'Memory too large',
  503: 'Unavailable (retry)',
};

/**
 * The error envelope of every refusal (middleware/errors.ts, sync.ts refusal):
 * `{"error": message, "code": CODE, ...details}`, here with the codes this answer can carry.
 */
export const errorBody = (codes: readonly string[]) =>
  z
    .object({
      error: z.string().meta({ description: 'what went wrong, for people (federation refusals: the lower-case tag)' }),
      code: z.enum(codes as [string, ...string[]]).meta({ description: 'stable machine-readable code (docs/api.md, Error codes)' }),
    })
    .catchall(z.unknown())
    .meta({ description: 'details such as `field`, `limit` or `current_version` sit beside `code`' });

/** OpenAPI parameters from a parseQuery shape (the input side: every query value is a string). */
export function queryParameters(shape: z.ZodRawShape): Parameter[] {
  return Object.entries(shape).map(([name, schema]) => {
    const { $schema: _drop, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    const description = typeof json.description === 'string' ? json.description : undefined;
    return { name, in: 'query', required: false, schema: json as never, ...(description ? { description } : {}) };
  });
}

const json = (schema: z.ZodType) => ({ 'application/json': { schema: resolver(schema, { io: 'input' }) } });

/** describeRoute middleware for a route: its parameters, body, answers and every error code it can give. */
export function documented(doc: RouteDoc): MiddlewareHandler {
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    responses[status] = { description: r.description, ...(r.schema ? { content: r.media ? { [r.media]: { schema: resolver(r.schema) } } : json(r.schema) } : r.media ? { content: { [r.media]: { schema: { type: 'string' } } } } : {}) };
  }
  const errors = merge(ACCESS_CODES[doc.access], doc.errors ?? {});
  for (const [status, codes] of Object.entries(errors) as Array<[`${ErrorStatus}`, string[]]>) {
    const text = STATUS_TEXT[Number(status) as ErrorStatus];
    responses[status] = { description: `${text}: ${codes.map((c) => `\`${c}\``).join(', ')}`, content: json(errorBody(codes)) };
  }
  return describeRoute({
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    security: SECURITY[doc.access],
    parameters: [...(doc.query ? queryParameters(doc.query) : []), ...(doc.headers ?? [])],
    ...(doc.body ? { requestBody: { required: doc.body.required ?? true, ...(doc.body.description ? { description: doc.body.description } : {}), content: json(doc.body.schema) } } : {}),
    responses: responses as never,
  });
}

/** Security schemes the `access` levels name. */
export const SECURITY_SCHEMES = {
  apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'API_KEY, when the node sets one (otherwise no key is asked)' },
  apiKeyBearer: { type: 'http', scheme: 'bearer', description: 'API_KEY as `Authorization: Bearer`' },
  adminBearer: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN as `Authorization: Bearer`' },
  adminBasic: { type: 'http', scheme: 'basic', description: 'ADMIN_TOKEN as the HTTP Basic password (any user name)' },
  peerSignature: { type: 'apiKey', in: 'header', name: 'x-memory-sig', description: 'ed25519 request signature with `x-peer-id` and `x-memory-nonce` (docs/wire.md, Signature matrix)' },
} as const;

/** Request headers routes read, as OpenAPI parameters. */
export const HEADERS = {
  agentId: { name: 'X-Agent-Id', in: 'header', required: false, description: 'the caller\'s agent id (the author of what it writes)', schema: { type: 'string' } },
  ifMatch: { name: 'If-Match', in: 'header', required: false, description: 'the version the update expects: `3`, `"3"` or `W/"3"`', schema: { type: 'string' } },
  peerId: { name: 'x-peer-id', in: 'header', required: false, description: 'the calling peer\'s node id', schema: { type: 'string' } },
  nonce: { name: 'x-memory-nonce', in: 'header', required: false, description: 'the signed nonce (docs/wire.md)', schema: { type: 'string' } },
} satisfies Record<string, Parameter>;
