import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from '../../errors.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time comparison that does not leak the secret's length. */
export function secretEquals(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** `API_KEY` enforcement: `x-api-key` (or `Authorization: Bearer`) on every route but `open` ones. */
export function apiKeyAuth(apiKey: string, open: (path: string) => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (!apiKey || open(c.req.path)) return next();
    const bearer = c.req.header('authorization')?.match(/^Bearer\s+(.+)$/i)?.[1];
    const given = c.req.header('x-api-key') ?? bearer;
    if (given === undefined) throw new ApiError(401, 'API_KEY_MISSING', 'x-api-key header required');
    if (!secretEquals(given, apiKey)) throw new ApiError(401, 'API_KEY_INVALID', 'invalid API key');
    return next();
  };
}

const ADMIN_CHALLENGE = 'Basic realm="memfed admin", charset="UTF-8"';

/**
 * `ADMIN_TOKEN` check for admin routes and Bull Board: `Authorization: Bearer <token>`,
 * or HTTP Basic with the token as password (so a browser can open Bull Board). Missing
 * and wrong credentials are both 401 with a Basic challenge, so a browser that sent a
 * wrong token asks again instead of showing an error page until it is restarted.
 */
export function adminAuth(token: string): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    let given = header.match(/^Bearer\s+(.+)$/i)?.[1];
    const basic = header.match(/^Basic\s+([A-Za-z0-9+/=]+)$/i)?.[1];
    if (given === undefined && basic !== undefined) {
      const decoded = Buffer.from(basic, 'base64').toString('utf8');
      given = decoded.slice(decoded.indexOf(':') + 1);
    }
    if (given === undefined || !secretEquals(given, token)) {
      c.header('WWW-Authenticate', ADMIN_CHALLENGE);
      if (given === undefined) throw new ApiError(401, 'ADMIN_TOKEN_MISSING', 'Authorization: Bearer <ADMIN_TOKEN> (or Basic with the token as password) required');
      throw new ApiError(401, 'ADMIN_TOKEN_INVALID', 'invalid admin token');
    }
    return next();
  };
}
