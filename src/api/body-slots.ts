import type { Context } from 'hono';
import type { Config } from '../config.js';
import { ApiError } from '../errors.js';
import { readRawBody } from './body.js';

/**
 * A fixed number of places for reading batch-sized bodies (federation pushes, bulk
 * imports: up to MAX_BATCH_BODY_BYTES each) at once. Each read buffers its whole body, so
 * without a cap a handful of concurrent uploads decides the process's memory; a request
 * that finds every place taken is refused at once (503 + Retry-After), never queued.
 */
export class BodySlots {
  private used = 0;

  constructor(readonly max: number) {}

  /** A release function, or null when every slot is taken. */
  tryAcquire(): (() => void) | null {
    if (this.used >= this.max) return null;
    this.used++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
    };
  }

  get inUse(): number {
    return this.used;
  }
}

// One set of slots per node configuration: a process runs one node (tests run several).
const slotsByConfig = new WeakMap<Config, BodySlots>();

export function batchReadSlots(config: Config): BodySlots {
  let slots = slotsByConfig.get(config);
  if (!slots) {
    slots = new BodySlots(config.limits.concurrentBatchReads);
    slotsByConfig.set(config, slots);
  }
  return slots;
}

export const BATCH_READS_BUSY_RETRY_AFTER_S = 1;

/** readRawBody under a batch-read slot; 503 `BATCH_READS_BUSY` when none is free. */
export async function readBatchBody(c: Context, config: Config): Promise<Uint8Array> {
  const release = batchReadSlots(config).tryAcquire();
  if (!release) {
    c.header('Retry-After', String(BATCH_READS_BUSY_RETRY_AFTER_S));
    throw new ApiError(503, 'BATCH_READS_BUSY', `this node is already reading ${config.limits.concurrentBatchReads} large request bodies; retry shortly`, { limit: config.limits.concurrentBatchReads });
  }
  try {
    return await readRawBody(c, config.limits.maxBatchBodyBytes);
  } finally {
    release();
  }
}
