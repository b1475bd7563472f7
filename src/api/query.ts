import type { Context } from 'hono';
import { z } from 'zod';
import { badRequest } from '../errors.js';
import { isValidId } from '../memory/model.js';
import { normalizeTimestamp } from '../memory/time.js';

/*
 * Query-string parameters, parsed one way for every route: a zod schema per parameter,
 * and one INVALID_QUERY answer naming the field. Absent and empty mean "not given".
 */

const given = (v: string | undefined): v is string => v !== undefined && v !== '';

/**
 * A non-negative integer of at most `digits` digits; absent, `fallback`. Outside
 * [min, max] it is refused, or clamped: above max (`clamp: 'above'`) or both ways.
 */
export function intParam(o: { fallback: number; min: number; max: number; digits: number; clamp: 'none' | 'above' | 'both' }) {
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!given(v)) return o.fallback;
      if (!new RegExp(`^\\d{1,${o.digits}}$`).test(v)) {
        ctx.addIssue({ code: 'custom', message: 'must be a non-negative integer' });
        return z.NEVER;
      }
      let n = Number(v);
      if (o.clamp !== 'none') n = Math.min(n, o.max);
      if (o.clamp === 'both') n = Math.max(n, o.min);
      if (n < o.min || n > o.max) {
        ctx.addIssue({ code: 'custom', message: n < o.min ? `must be at least ${o.min}` : `must be at most ${o.max}` });
        return z.NEVER;
      }
      return n;
    })
    // What the OpenAPI document shows of it (JSON Schema keywords); the parser above decides.
    .meta({ pattern: `^\\d{1,${o.digits}}$`, description: `integer ${o.min}..${o.max}, default ${o.fallback}${CLAMPED[o.clamp]}` });
}

const CLAMPED = { none: '', above: '; larger values are read as the maximum', both: '; values outside the range are read as the nearest bound' } as const;

/** An RFC 3339 timestamp, normalized to memfed's form; absent, undefined. */
export const timestampParam = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (!given(v)) return undefined;
    const t = normalizeTimestamp(v);
    if (t === null) {
      ctx.addIssue({ code: 'custom', message: 'must be an RFC 3339 timestamp' });
      return z.NEVER;
    }
    return t;
  });

/** One of `values`; absent, undefined. */
export const enumParam = <T extends string>(values: readonly T[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!given(v)) return undefined;
      if (!(values as readonly string[]).includes(v)) {
        ctx.addIssue({ code: 'custom', message: `must be one of ${values.join(', ')}` });
        return z.NEVER;
      }
      return v as T;
    })
    .meta({ enum: [...values] });

/** A string matching `pattern`; absent, undefined. */
export const patternParam = (pattern: RegExp, what: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      if (!pattern.test(v)) {
        ctx.addIssue({ code: 'custom', message: `must be ${what}` });
        return z.NEVER;
      }
      return v;
    })
    .meta({ pattern: pattern.source, description: what });

/** Parameters as strings (a query string, CLI flags): the parsed values, or the first problem. */
export function parseParams<S extends z.ZodRawShape>(shape: S, raw: Record<string, string | undefined>): { ok: true; value: z.output<z.ZodObject<S>> } | { ok: false; field: string; message: string } {
  const r = z.object(shape).safeParse(raw);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0]!;
  return { ok: false, field: String(issue.path[0] ?? ''), message: issue.message };
}

/** Parses the request's query against `shape`; the first bad field is a 400 INVALID_QUERY. */
export function parseQuery<S extends z.ZodRawShape>(c: Context, shape: S): z.output<z.ZodObject<S>> {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) raw[key] = c.req.query(key);
  const r = parseParams(shape, raw);
  if (r.ok) return r.value;
  throw badRequest('INVALID_QUERY', `${r.field} ${r.message}`, { field: r.field });
}

export const INVALID_ID_MESSAGE = 'memory id must be 1-128 bytes of [A-Za-z0-9_:.@-] without ".."';

/** The `:id` path parameter of a memory route, or 400 INVALID_ID. */
export function pathId(c: Context): string {
  const id = c.req.param('id') ?? '';
  if (!isValidId(id)) throw badRequest('INVALID_ID', INVALID_ID_MESSAGE);
  return id;
}
