import { Redis } from 'ioredis';
import { REDIS_URL, uniqueSuffix } from './env.js';

/** A BullMQ prefix no other test uses. */
export const uniquePrefix = () => `mft_${uniqueSuffix()}`;

/** Deletes every key under a prefix (the per-test equivalent of obliterate for all queues). */
export async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
