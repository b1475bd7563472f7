import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError, badRequest } from '../errors.js';
import { assertSafeJson } from '../memory/model.js';
import type { IncomingMessage } from 'node:http';
import { readCapped, readNodeCapped } from '../streams.js';

// Deeper than any valid request (metadata is capped at 32 levels inside a push envelope).
export const MAX_JSON_DEPTH = 40;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Reads the raw body with a hard byte cap (Content-Length checked first, then counted
 * while streaming, so chunked uploads are cut off too). Returns the exact bytes, which
 * signature checks need before any parsing.
 */
export async function readRawBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  const declared = c.req.header('content-length');
  if (declared !== undefined) {
    const n = Number(declared);
    if (!Number.isSafeInteger(n) || n < 0) throw badRequest('INVALID_CONTENT_LENGTH', 'Content-Length is not a valid length');
    if (n > maxBytes) throw tooLarge(maxBytes);
  }
  // Counted while streaming too: chunked uploads have no Content-Length to trust.
  const incoming = nodeIncoming(c);
  const body = incoming ? await readNodeCapped(incoming, maxBytes).catch(incomplete) : await readCapped(c.req.raw.body, maxBytes);
  if (body === null) throw tooLarge(maxBytes);
  return body;
}

/**
 * The Node request under @hono/node-server, when nothing has started reading its body
 * (reading it directly skips building a web Request and stream for every request).
 */
function nodeIncoming(c: Context): IncomingMessage | null {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming || typeof incoming.on !== 'function') return null;
  return incoming.readableFlowing === null && !incoming.readableEnded ? incoming : null;
}

// The client went away mid-body (or the stream broke): nobody reads the answer, but the
// request is counted as the client's failure, not the server's.
const incomplete = (): never => {
  throw badRequest('INCOMPLETE_BODY', 'the request body ended before it was complete');
};

const tooLarge = (max: number) => new ApiError(413, 'PAYLOAD_TOO_LARGE', `request body exceeds ${max} bytes`, { limit: max });

/** Strict UTF-8 decode, nesting pre-scan (before JSON.parse allocates), parse, NUL/key checks. */
export function parseJsonBytes(raw: Uint8Array, opts: { deepChecks?: boolean } = {}): unknown {
  if (raw.byteLength === 0) throw badRequest('EMPTY_BODY', 'request body is empty; expected JSON');
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw badRequest('INVALID_UTF8', 'request body is not valid UTF-8');
  }
  if (exceedsDepth(text, MAX_JSON_DEPTH)) throw badRequest('NESTING_TOO_DEEP', `JSON nesting exceeds ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest('INVALID_JSON', `request body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  if (opts.deepChecks !== false) assertSafeJson(value);
  return value;
}

/**
 * `application/json` in any case, with or without parameters (`; charset=utf-8`); the body
 * is decoded as UTF-8 whatever a charset says. Not `text/plain`, a form type or a missing
 * header: those are what a web page can send cross-origin without a CORS preflight, so
 * accepting them would let any page write to a node on localhost. `application/*+json`
 * is refused too: no client of this API sends it.
 */
export function isJsonMediaType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const semi = header.indexOf(';');
  return (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase() === 'application/json';
}

/** 415 unless the request says its body is JSON; checked before the body is read. */
export function requireJsonBody(c: Context): void {
  if (isJsonMediaType(c.req.header('content-type'))) return;
  throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'request body must be sent as Content-Type: application/json', { expected: 'application/json' });
}

/** `deepChecks: false` only where the caller runs assertSafeJson over the whole value itself. */
export async function readJson(c: Context, maxBytes: number, opts: { deepChecks?: boolean } = {}): Promise<unknown> {
  requireJsonBody(c);
  return parseJsonBytes(await readRawBody(c, maxBytes), opts);
}

/**
 * For routes whose body is optional: no body (or an empty one) reads as `{}`; a body that
 * is there is held to the same rules as readJson's (JSON type, valid JSON).
 */
export async function readOptionalJson(c: Context, maxBytes: number): Promise<unknown> {
  const raw = await readRawBody(c, maxBytes);
  if (raw.byteLength === 0) return {};
  requireJsonBody(c);
  return parseJsonBytes(raw);
}

/**
 * Bracket depth outside string literals; a linear scan with no recursion. A string is
 * skipped whole: its closing quote is the next one not escaped, found with indexOf
 * (most of a body's bytes are inside strings).
 */
export function exceedsDepth(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 34 /* " */) {
      let end = text.indexOf('"', i + 1);
      while (end !== -1 && isEscaped(text, end)) end = text.indexOf('"', end + 1);
      if (end === -1) return false; // unterminated: JSON.parse refuses it
      i = end;
    } else if (ch === 123 || ch === 91) {
      if (++depth > max) return true;
    } else if (ch === 125 || ch === 93) depth--;
  }
  return false;
}

/**
 * Whether the character at `at` (inside a string) is escaped: an odd run of backslashes
 * before it. The run stops at the string's opening quote at the latest, and each run is
 * read for one quote only, so the scan stays linear.
 */
function isEscaped(text: string, at: number): boolean {
  let k = at - 1;
  while (text.charCodeAt(k) === 92 /* \ */) k--;
  return (at - 1 - k) % 2 === 1;
}

/**
 * Holds a body to the zod schema its route documents (docs: /api/v1/openapi.json) and
 * returns `validate()`'s result. A body the schema refuses is answered by `validate`, the
 * domain validator, so the code and message are the ones the route has always given; only
 * a body the schema refuses and the domain accepts is a plain `code` (INVALID_BODY). So the
 * documented shape is enforced and cannot drift from what the route accepts.
 */
export function checkBody<T>(schema: z.ZodType, body: unknown, validate: () => T, code = 'INVALID_BODY'): T {
  const r = schema.safeParse(body);
  const value = validate();
  if (r.success) return value;
  const issue = r.error.issues[0];
  throw badRequest(code, `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'does not match the documented schema'}`, issue?.path.length ? { field: issue.path.join('.') } : {});
}
