import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isDatabaseUnavailable } from '../../db/conflicts.js';
import { ApiError } from '../../errors.js';
import type { Logger } from '../../logger.js';

const DATABASE_RETRY_AFTER_S = 1;

/** One place that turns errors into the docs/wire.md envelope `{"error", "code", ...}`. */
export function errorHandler(logger: Logger) {
  return (err: Error, c: Context) => {
    if (err instanceof ApiError) {
      return c.json({ error: err.message, code: err.code, ...err.details }, err.status as ContentfulStatusCode);
    }
    if (err instanceof HTTPException) {
      const status = err.status;
      return c.json({ error: err.message || 'request refused', code: status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST' }, status as ContentfulStatusCode);
    }
    // Postgres down, a lost connection, or a deadlock/serialization abort: a client
    // fault nowhere, so a retryable 503 (a write whose connection died mid-commit may have
    // committed, as with any lost connection: docs/api.md).
    if (isDatabaseUnavailable(err)) {
      logger.warn({ err, method: c.req.method, path: c.req.path }, 'database unavailable; answered 503');
      c.header('Retry-After', String(DATABASE_RETRY_AFTER_S));
      return c.json({ error: 'the database cannot serve this request now; retry shortly', code: 'DATABASE_UNAVAILABLE' }, 503);
    }
    logger.error({ err, method: c.req.method, path: c.req.path }, 'unhandled error');
    return c.json({ error: 'internal error', code: 'INTERNAL' }, 500);
  };
}

export const notFoundHandler = (c: Context) => c.json({ error: 'no such route', code: 'ROUTE_NOT_FOUND' }, 404);
