import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Metrics } from '../../metrics.js';

/** Request duration by route pattern (bounded labels: never the raw path). */
export function httpMetrics(metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    const end = metrics.httpRequestDuration.startTimer();
    try {
      await next();
    } finally {
      const matched = routePath(c, -1);
      const route = matched === '*' || matched === '/*' || matched === '' ? 'unmatched' : matched;
      end({ method: c.req.method.length <= 7 ? c.req.method : 'OTHER', route, status: `${Math.floor(c.res.status / 100)}xx` });
    }
  };
}
