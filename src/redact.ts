import { createHash } from 'node:crypto';

/*
 * The one place secrets are taken out of text meant for people: config errors, the
 * start-up config summary, log lines and CLI error output. Two kinds of secret:
 * passwords inside URLs (DATABASE_URL, REDIS_URL, peer URLs), found by shape, and the
 * configured shared secrets (API_KEY, ADMIN_TOKEN), found by value.
 */

export const REDACTED = '***';

// scheme://user:password@ — the password is everything up to the last '@' of the authority.
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>]*):([^\s/?#"'<>]*)@/gi;

/** Passwords in every URL of `text` replaced by ***; shared secrets (exact values) too. */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_PASSWORD, (_m, head: string) => `${head}:${REDACTED}@`);
  // Longest first, so a secret that contains another is replaced whole.
  for (const s of [...secrets].filter((x) => x.length >= 4).sort((a, b) => b.length - a.length)) out = out.split(s).join(REDACTED);
  return out;
}

/** A URL for display: its password masked; text that is no URL is still scrubbed by shape. */
export function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    if (url.password) url.password = REDACTED;
    return url.toString();
  } catch {
    return redactText(u);
  }
}

/** The secret values an environment carries (for `redactText`). */
export function secretsOf(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const name of ['API_KEY', 'ADMIN_TOKEN']) if (env[name]) out.push(env[name]);
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'FED_PEERS']) {
    for (const m of (env[name] ?? '').matchAll(URL_PASSWORD)) if (m[2]) out.push(m[2], safeDecode(m[2]));
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** What a log may say about a SQL statement: its first words and a hash, never the values. */
export function queryFingerprint(sql: string): string {
  const head = sql.replace(/\s+/g, ' ').trim().split(' ').slice(0, 4).join(' ');
  return `${head.slice(0, 60)} … #${createHash('sha256').update(sql).digest('hex').slice(0, 12)}`;
}

// Fields database drivers attach to their errors: postgres.js `query`/`parameters`/`args`
// (enumerable in debug mode), drizzle's DrizzleQueryError `query`/`params`; Postgres's
// `detail` quotes the offending values ("Key (id)=(...) already exists").
const SQL_VALUE_FIELDS = new Set(['parameters', 'params', 'args', 'types', 'detail']);
const DRIZZLE_MESSAGE = /Failed query: ([\s\S]*?)\nparams: [\s\S]*$/;

/** An error message fit for a log or a stored failure reason (see serializeError). */
export function redactErrorMessage(message: string, secrets: readonly string[] = []): string {
  return redactText(message.replace(DRIZZLE_MESSAGE, (_m, sql: string) => `query failed: ${queryFingerprint(sql)}`), secrets);
}

interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  cause?: SerializedError;
  [key: string]: unknown;
}

/**
 * An error as a log may hold it: message and stack scrubbed of URL passwords and
 * `secrets`, SQL parameters dropped (drizzle's "Failed query ... params: ..." message
 * becomes the query's fingerprint), the cause chain serialized the same way.
 */
export function serializeError(err: unknown, secrets: readonly string[] = [], depth = 0): SerializedError | unknown {
  if (!(err instanceof Error)) return typeof err === 'string' ? redactErrorMessage(err, secrets) : err;
  const e = err as Error & Record<string, unknown>;
  const scrub = (s: string) => redactErrorMessage(s, secrets);
  const out: SerializedError = { type: e.constructor?.name ?? e.name, message: scrub(e.message) };
  if (e.stack) {
    // The stack repeats the message first; keep only its frames after the scrubbed message.
    const frames = e.stack.indexOf('\n    at ');
    out.stack = `${e.name}: ${out.message}${frames >= 0 ? redactText(e.stack.slice(frames), secrets) : ''}`;
  }
  for (const key of Object.keys(e)) {
    if (key === 'message' || key === 'stack' || key === 'cause' || SQL_VALUE_FIELDS.has(key)) continue;
    const v = e[key];
    if (key === 'query' && typeof v === 'string') out.query = queryFingerprint(v);
    else if (typeof v === 'string') out[key] = redactText(v, secrets);
    else if (v === null || typeof v === 'number' || typeof v === 'boolean') out[key] = v;
  }
  if (e.cause !== undefined && depth < 5) out.cause = serializeError(e.cause, secrets, depth + 1) as SerializedError;
  return out;
}
