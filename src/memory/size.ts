import { ApiError } from '../errors.js';

/** Default cap on one memory (MEMORY_MAX_BYTES): 256 KiB. */
export const MEMORY_MAX_BYTES_DEFAULT = 256 * 1024;

export const MEMORY_TOO_LARGE = 'MEMORY_TOO_LARGE';

/**
 * Refuses a memory whose serialized JSON (the validated object as stored and sent: known
 * keys, unknown keys and metadata, UTF-8 bytes of JSON.stringify, escapes included) is
 * over `maxBytes`. Without it unknown keys grow a row without bound, and a row larger
 * than a peer's page or body limit would stall that peer's catch-up or push at it.
 */
export function checkMemorySize(memory: Record<string, unknown>, maxBytes: number): void {
  const bytes = Buffer.byteLength(JSON.stringify(memory));
  if (bytes <= maxBytes) return;
  throw new ApiError(422, MEMORY_TOO_LARGE, `${MEMORY_TOO_LARGE}: memory serializes to ${bytes} bytes; at most ${maxBytes} are accepted`, { field: 'memory', bytes, limit: maxBytes });
}
