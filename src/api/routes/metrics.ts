import { Hono } from 'hono';
import type { Metrics } from '../../metrics.js';

export function metricsRoutes(metrics: Metrics) {
  const app = new Hono();
  app.get('/metrics', async (c) => {
    const body = await metrics.render();
    return c.body(body, 200, { 'content-type': metrics.registry.contentType });
  });
  return app;
}
