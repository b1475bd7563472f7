import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ApiError } from '../../errors.js';
import type { Logger } from '../../logger.js';

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
    logger.error({ err, method: c.req.method, path: c.req.path }, 'unhandled error');
    return c.json({ error: 'internal error', code: 'INTERNAL' }, 500);
  };
}

export const notFoundHandler = (c: Context) => c.json({ error: 'no such route', code: 'ROUTE_NOT_FOUND' }, 404);
