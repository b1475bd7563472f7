import { Hono } from 'hono';
import type { Metrics } from '../../metrics.js';
import { documented } from '../openapi/describe.js';

export function metricsRoutes(metrics: Metrics) {
  const app = new Hono();
  app.get('/metrics', documented({ summary: 'Prometheus metrics', tag: 'health', access: 'api-key', responses: { 200: { description: 'Prometheus text exposition format', media: 'text/plain' } } }), async (c) => {
    const body = await metrics.render();
    return c.body(body, 200, { 'content-type': metrics.registry.contentType });
  });
  return app;
}
