import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';
import { parseParams } from '../api/query.js';
import { ApiError } from '../errors.js';

/** A usage error: reported as one line on stderr, exit 2. */
export class UsageError extends Error {}

/** A well-formed request the node's state refuses (unknown peer, already exists): one line on stderr, exit 1. */
export class RefusedError extends Error {}

/**
 * The subcommand, when it is one of `known`; else a UsageError naming them.
 * `command` is what came before it (`dlq`), `tool` the command whose --help lists them.
 */
export function subcommand(command: string, given: string | undefined, known: readonly string[], tool: string): string {
  if (given !== undefined && known.includes(given)) return given;
  throw new UsageError(`${command}: ${given === undefined ? 'a command is required' : `unknown command "${given}"`} (${known.join(', ')}; memfed ${tool} --help)`);
}

const POSITIVE_INT = /^[1-9]\d{0,14}$/;

/** A positive integer flag value, or a UsageError with `what` as the message. */
export function positiveInt(value: string, what: string): number {
  if (!POSITIVE_INT.test(value)) throw new UsageError(what);
  return Number(value);
}

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
  return ids.map((v) => positiveInt(v, `${command}: --id expects a positive integer, got "${v}"`));
}

/** The admin API's checks, as CLI errors: bad input exits 2, a refusal by the node's state 1. */
export function asCliError(cmd: string, err: unknown): unknown {
  if (!(err instanceof ApiError)) return err;
  return err.status === 400 ? new UsageError(`${cmd}: ${err.code}: ${err.message}`) : new RefusedError(`${cmd}: ${err.code}: ${err.message}`);
}
