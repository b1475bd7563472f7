import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';
import { parseParams } from '../api/query.js';

/** A usage error: reported as one line on stderr, exit 2. */
export class UsageError extends Error {}

export const isHelp = (arg: string | undefined) => arg === 'help' || arg === '--help' || arg === '-h';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Strict flag parsing: an unknown flag, a missing value or a stray argument is a UsageError. */
export function parseFlags<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    // Node's messages run to several lines of advice: the first one says what is wrong.
    throw new UsageError(`${command}: ${(err as Error).message.split('\n')[0]!.trim()}`);
  }
}

/** Flags checked by the admin API's own parameter rules (same values accepted and refused). */
export function checkParams<S extends z.ZodRawShape>(command: string, shape: S, raw: Record<string, string | undefined>): z.output<z.ZodObject<S>> {
  const r = parseParams(shape, raw);
  if (!r.ok) throw new UsageError(`${command}: --${r.field} ${r.message}`);
  return r.value;
}

/** `--id N ...`: each a positive integer, or a UsageError (never silently dropped). */
export function idFlags(command: string, ids: string[] | undefined): number[] | undefined {
  if (ids === undefined) return undefined;
  return ids.map((v) => {
    if (!/^[1-9]\d{0,14}$/.test(v)) throw new UsageError(`${command}: --id expects a positive integer, got "${v}"`);
    return Number(v);
  });
}
