import { Hono } from 'hono';
import type { AppDeps } from './deps.js';
import { adminAuth, apiKeyAuth } from './middleware/auth.js';
import { requireClientCert } from './middleware/client-cert.js';
import { errorHandler, notFoundHandler } from './middleware/errors.js';
import { httpMetrics } from './middleware/http-metrics.js';
import { healthRoutes } from './routes/health.js';
import { archiveLinkRoutes } from './routes/archive-links.js';
import { memoryRoutes } from './routes/memories.js';
import { metricsRoutes } from './routes/metrics.js';
import { syncRoutes } from './routes/sync.js';
import { ADMIN_PREFIX, adminRoutes } from './routes/admin.js';
import { auditAdminRoutes, auditRoutes } from './routes/audit.js';
import { DOC_ASSET_PREFIX, OPEN_DOC_PATHS, openApiRoutes } from './routes/openapi.js';

const OPEN_PATHS = new Set(['/api/v1/health', '/api/v1/ready']);
// The API's contract and its reference page: as open as health (routes/openapi.ts).
const isOpenDocPath = (path: string) => (OPEN_DOC_PATHS as readonly string[]).includes(path) || path.startsWith(DOC_ASSET_PREFIX);

/** The HTTP app; no listen here, so tests drive it through `app.request()`. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.onError(errorHandler(deps.logger));
  app.notFound(notFoundHandler);
  app.use('*', httpMetrics(deps.metrics));
  // Before the API key: a peer without a certificate learns nothing else.
  if (deps.config.tls.requireClientCert) app.use('/api/v1/sync/*', requireClientCert());
  // Admin routes answer to ADMIN_TOKEN instead of the API key.
  app.use('*', apiKeyAuth(deps.config.apiKey, (path) => OPEN_PATHS.has(path) || isOpenDocPath(path) || path.startsWith(`${ADMIN_PREFIX}/`) || (deps.queueBoard !== undefined && path.startsWith(deps.queueBoard.path))));
  app.route('/', healthRoutes(deps));
  app.route('/', metricsRoutes(deps.metrics));
  app.route('/', memoryRoutes(deps));
  app.route('/', archiveLinkRoutes(deps));
  app.route('/', syncRoutes(deps));
  app.route('/', auditRoutes(deps));
  app.route('/', openApiRoutes(() => app));
  // Unset ADMIN_TOKEN = no admin surface at all (not merely refused).
  if (deps.config.adminToken) {
    app.route('/', adminRoutes(deps));
    app.route('/', auditAdminRoutes(deps));
    if (deps.queueBoard) {
      // Every Bull Board path (page, assets, its API) sits behind the token.
      const { path, app: board } = deps.queueBoard;
      app.use(path, adminAuth(deps.config.adminToken));
      app.use(`${path}/*`, adminAuth(deps.config.adminToken));
      app.route(path, board);
    }
  }
  return app;
}

/** The worker role's small HTTP surface: health, readiness and /metrics only. */
export function createOpsApp(deps: Pick<AppDeps, 'config' | 'probes' | 'metrics' | 'logger'>): Hono {
  const app = new Hono();
  app.onError(errorHandler(deps.logger));
  app.notFound(notFoundHandler);
  app.use('*', apiKeyAuth(deps.config.apiKey, (path) => OPEN_PATHS.has(path)));
  app.route('/', healthRoutes(deps));
  app.route('/', metricsRoutes(deps.metrics));
  return app;
}
