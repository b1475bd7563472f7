import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; one root logger per process, children per component. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}
