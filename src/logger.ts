import { pino, type DestinationStream, type Logger } from 'pino';
import { serializeError } from './redact.js';

export type { Logger };

// Secrets a log line might carry as fields: shared secrets, passwords, auth headers.
const REDACT_PATHS = ['apiKey', 'adminToken', 'password', '*.apiKey', '*.adminToken', '*.password', 'headers["x-api-key"]', 'headers.authorization', '*.headers["x-api-key"]', '*.headers.authorization'];

/**
 * Structured JSON logs on stdout; one root logger per process, children per component.
 * `secrets` (API_KEY, ADMIN_TOKEN, URL passwords: src/redact.ts secretsOf) are masked in
 * every logged error, and errors lose their SQL parameters (src/redact.ts serializeError).
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, opts: { secrets?: readonly string[]; destination?: DestinationStream } = {}): Logger {
  const err = (e: unknown) => serializeError(e, opts.secrets ?? []);
  const options = {
    level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err, error: err },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
