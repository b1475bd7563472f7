import { REFUSAL_TAGS } from '../../federation/inbound.js';
import { CODES } from '../../memory/model.js';
import { MEMORY_TOO_LARGE } from '../../memory/size.js';

/*
 * The error codes a route can answer, by HTTP status, in families that routes share. A
 * route's document lists the union of its families (docs/api.md, Error codes, describes
 * each code); test/api/openapi.int.test.ts provokes a sample of them and checks that the
 * answer is one the document lists for that route.
 */

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 422 | 503;
export type ErrorCodes = Partial<Record<ErrorStatus, readonly string[]>>;

/** API_KEY (middleware/auth.ts), when it is set. */
export const API_KEY_CODES: ErrorCodes = { 401: ['API_KEY_MISSING', 'API_KEY_INVALID'] };

/** ADMIN_TOKEN (middleware/auth.ts). */
export const ADMIN_CODES: ErrorCodes = { 401: ['ADMIN_TOKEN_MISSING', 'ADMIN_TOKEN_INVALID'] };

/** Reading a JSON body (api/body.ts) and the whole-body checks (assertSafeJson). */
export const JSON_BODY_CODES: ErrorCodes = {
  400: ['INVALID_CONTENT_LENGTH', 'EMPTY_BODY', 'INCOMPLETE_BODY', 'INVALID_UTF8', 'NESTING_TOO_DEEP', 'INVALID_JSON', 'NUL_CHARACTER', 'INVALID_UNICODE', 'INVALID_NUMBER', 'FORBIDDEN_KEY'],
  413: ['PAYLOAD_TOO_LARGE'],
  415: ['UNSUPPORTED_MEDIA_TYPE'],
};

/** A batch-sized body read under a slot (api/body-slots.ts). */
export const BATCH_BODY_CODES: ErrorCodes = merge(JSON_BODY_CODES, { 503: ['BATCH_READS_BUSY'] });

/** Any route that reads or writes Postgres (middleware/errors.ts): down, or a transaction it aborted for a conflict. */
export const DATABASE_CODES: ErrorCodes = { 503: ['DATABASE_UNAVAILABLE'] };

/** A memory built from a client body (memory/input.ts, rules.ts, size.ts). */
export const MEMORY_INPUT_CODES: ErrorCodes = {
  400: ['INVALID_BODY', 'READ_ONLY_FIELD', ...Object.values(CODES)],
  422: [MEMORY_TOO_LARGE],
};

export const AGENT_HEADER_CODES: ErrorCodes = { 400: ['INVALID_AGENT_ID'] };
export const PATH_ID_CODES: ErrorCodes = { 400: ['INVALID_ID'] };
export const QUERY_CODES: ErrorCodes = { 400: ['INVALID_QUERY'] };
export const NOT_FOUND_CODES: ErrorCodes = { 404: ['NOT_FOUND'] };
export const GOVERNANCE_CODES: ErrorCodes = { 403: ['GOVERNANCE_REFUSED'] };
/** A write that waits for its quorum (api/quorum-failure.ts); the commit stands. */
export const QUORUM_CODES: ErrorCodes = { 503: ['QUORUM_NOT_MET'] };

const upper = (tags: readonly string[]) => tags.map((t) => t.toUpperCase());

/**
 * A federation request's authentication: client certificate (FED_REQUIRE_CLIENT_CERT),
 * the signature matrix (federation/inbound.ts) and the nonce store it needs.
 */
export const PEER_AUTH_CODES: ErrorCodes = {
  401: ['CLIENT_CERT_REQUIRED', ...upper(REFUSAL_TAGS.filter((t) => !t.startsWith('peer_id_')))],
  403: ['CLIENT_CERT_INVALID', ...upper(REFUSAL_TAGS.filter((t) => t.startsWith('peer_id_')))],
  503: ['NONCE_STORE_UNAVAILABLE'],
};

/** The union of code families, per status, each code once. */
export function merge(...families: ErrorCodes[]): ErrorCodes {
  const out: Partial<Record<ErrorStatus, string[]>> = {};
  for (const family of families) {
    for (const [status, codes] of Object.entries(family) as Array<[`${ErrorStatus}`, readonly string[]]>) {
      const list = (out[Number(status) as ErrorStatus] ??= []);
      for (const code of codes) if (!list.includes(code)) list.push(code);
    }
  }
  return out;
}
