import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Hono } from 'hono';
import type { Queues } from './registry.js';

export const BULL_BOARD_PATH = '/admin/queues';

/** Bull Board over every memfed queue; the API mounts it behind ADMIN_TOKEN. */
export function bullBoardApp(queues: Queues): Hono {
  const serverAdapter = new HonoAdapter(serveStatic).setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: Object.values(queues).map((q) => new BullMQAdapter(q, { readOnlyMode: false, description: `memfed ${q.name} queue` })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'memfed queues' } },
  });
  return serverAdapter.registerPlugin() as unknown as Hono;
}
