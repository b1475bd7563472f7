import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import type { ControllerHandlerReturnType, HookContext } from '@bull-board/api/typings/app';
import type { Queue } from 'bullmq';
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AuditRecorder } from '../src/audit/events.js';
import type { Logger } from '../src/logger.js';
import { auditQueue } from './audit.js';
import type { RedisClient } from './connection.js';
import type { Queues } from './registry.js';

export const BULL_BOARD_PATH = '/admin/queues';

// The chain must hold only what the node recorded: nothing may be added, retried or
// edited in its queue by hand (the worker re-reads outbox rows anyway).
const READ_ONLY_QUEUES = new Set<string>([auditQueue.name]);

/**
 * Bull Board over every memfed queue; the API mounts it behind ADMIN_TOKEN. Every write
 * action (retry, remove, pause, add, clean, ...) is audited with the admin as actor, and
 * the board's error bodies are answered in the service's envelope, without internals.
 */
export function bullBoardApp(queues: Queues, deps: { audit: AuditRecorder; logger: Logger; redis: RedisClient }): Hono {
  const serverAdapter = new HonoAdapter(serveStatic).setBasePath(BULL_BOARD_PATH);
  const byName = new Map<string, Queue>(Object.values(queues).map((q) => [q.name, q]));
  createBullBoard({
    queues: Object.values(queues).map((q) => new BullMQAdapter(q, { readOnlyMode: READ_ONLY_QUEUES.has(q.name), description: `memfed ${q.name} queue` })),
    serverAdapter,
    options: {
      // No link to the bull-board docs site: the board is an offline-capable operator tool.
      uiConfig: { boardTitle: 'memfed queues', hideDocsLink: true },
      handlerHooks: { after: (ctx, result) => (ctx.method === 'get' ? withTrueRunTimes(deps.redis, byName, ctx, result) : result) },
    },
  });
  const board = serverAdapter.registerPlugin() as unknown as Hono;
  const app = new Hono();
  app.use('*', async (c, next) => {
    await next();
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      deps.audit.record({ kind: 'board.action', actor: 'admin', details: { method: c.req.method, path: c.req.path.slice(0, 300), status: c.res.status } });
    }
    if (c.res.status >= 400) c.res = await envelope(c, deps.logger);
    else if (c.res.headers.get('content-type')?.startsWith('text/html')) c.res = await servedWhole(c.res);
  });
  app.route('/', board);
  return app;
}

interface BoardJob {
  id?: string;
  timestamp?: number;
  delay?: number;
}

/**
 * Bull Board's timeline shows a delayed job's "Will run at" as added-at + `delay`: right for
 * a job added with a delay, wrong for a retry in backoff, whose delay counts from the failed
 * attempt (the board then shows a time before that attempt's "Process started at"). For each
 * delayed job in a board answer, `delay` becomes what makes that sum the time BullMQ will
 * really run it: its score in the queue's delayed set. A failed lookup leaves the answer as is.
 */
export async function withTrueRunTimes(redis: RedisClient, byName: Map<string, Queue>, ctx: HookContext, result: ControllerHandlerReturnType): Promise<ControllerHandlerReturnType> {
  const body = result.body as { queues?: Array<{ name?: string; jobs?: BoardJob[] }>; job?: BoardJob; status?: string } | undefined;
  const lists: Array<[Queue | undefined, BoardJob[]]> = [];
  if (ctx.route === '/api/queues') for (const q of body?.queues ?? []) lists.push([byName.get(q.name ?? ''), q.jobs ?? []]);
  else if (ctx.route === '/api/queues/:queueName/:jobId' && body?.job && body.status === 'delayed') lists.push([byName.get(String(ctx.request.params.queueName)), [body.job]]);
  const pending = lists.flatMap(([queue, jobs]) => (queue ? jobs.filter((j) => j.id && typeof j.timestamp === 'number' && (j.delay ?? 0) > 0).map((job) => ({ key: queue.keys.delayed!, job })) : []));
  if (pending.length === 0) return result;
  // One lookup each, not a pipeline: on a cluster the queues' keys sit in different slots.
  const scores = await Promise.all(pending.map(({ key, job }) => redis.zscore(key, job.id!).then((s): [Error | null, unknown] => [null, s], (err: Error): [Error | null, unknown] => [err, null])));
  pending.forEach(({ job }, i) => {
    const [err, score] = scores?.[i] ?? [null, null];
    // BullMQ's delayed score: the run time in ms times 0x1000, plus a tie-breaking counter.
    if (!err && typeof score === 'string') job.delay = Math.floor(Number(score) / 0x1000) - job.timestamp!;
  });
  return result;
}

/**
 * The board's page links its fonts from Google Fonts; without them it falls back to the
 * system fonts its CSS already names. Dropping every external <link> keeps the board
 * whole on a node without internet access, and its operators' browsers off third parties.
 */
export async function servedWhole(res: Response): Promise<Response> {
  const html = (await res.text()).replace(/<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?\/\/[^>]*>\s*/gi, '');
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  return new Response(html, { status: res.status, headers });
}

/** The board's `{error: {key: 'ERRORS.X'}, message, details}` as `{error, code}`; the rest is logged. */
async function envelope(c: Context, logger: Logger): Promise<Response> {
  const status = c.res.status as ContentfulStatusCode;
  const body = (await c.res.clone().json().catch(() => null)) as { error?: { key?: unknown }; message?: unknown } | null;
  const key = typeof body?.error?.key === 'string' ? body.error.key.replace(/^ERRORS\./, '') : '';
  const code = /^[A-Z0-9_]{1,64}$/.test(key) ? `BOARD_${key}` : 'BOARD_ERROR';
  if (status >= 500) logger.error({ path: c.req.path, board: body }, 'queue board request failed');
  const text = status >= 500 ? 'queue board request failed' : key.toLowerCase().replace(/_/g, ' ') || 'queue board request refused';
  return new Response(JSON.stringify({ error: text, code }), { status, headers: { 'content-type': 'application/json' } });
}
