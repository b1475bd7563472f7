import { Hono } from 'hono';
import { z } from 'zod';
import { notFound } from '../../errors.js';
import { documented } from '../openapi/describe.js';
import { DOCS_PATH, OPENAPI_PATH, buildOpenApiDocument } from '../openapi/document.js';
import { ASSET_NAMES, REFERENCE_PAGE_CSP, REFERENCE_PAGE_HTML, referenceAsset } from '../openapi/reference-page.js';

/** Open, like /api/v1/health: the contract is the same for every node of a version and holds no data. */
export const OPEN_DOC_PATHS = [OPENAPI_PATH, DOCS_PATH] as const;
export const DOC_ASSET_PREFIX = `${DOCS_PATH}/assets/`;

/**
 * The OpenAPI document of `documentedApp()` (the composed API app, so exactly the routes
 * this node mounts) and the reference page beside it. The document is built once.
 */
export function openApiRoutes(documentedApp: () => Hono) {
  const app = new Hono();
  let doc: Promise<Record<string, unknown>> | undefined;
  const document = () => (doc ??= buildOpenApiDocument(documentedApp()).catch((err: unknown) => {
    doc = undefined;
    throw err;
  }));

  app.get(OPENAPI_PATH, documented({ summary: 'This OpenAPI 3.1 document', tag: 'docs', access: 'open', responses: { 200: { description: 'the document', schema: z.record(z.string(), z.unknown()) } } }), async (c) => c.json(await document()));

  app.get(DOCS_PATH, documented({ summary: 'Interactive API reference (Swagger UI, served offline)', tag: 'docs', access: 'open', responses: { 200: { description: 'HTML page', media: 'text/html' } } }), (c) => {
    c.header('content-security-policy', REFERENCE_PAGE_CSP);
    return c.html(REFERENCE_PAGE_HTML);
  });

  app.get(
    `${DOC_ASSET_PREFIX}:name`,
    documented({
      summary: 'A static asset of the reference page',
      tag: 'docs',
      access: 'open',
      description: `One of ${ASSET_NAMES.map((n) => `\`${n}\``).join(', ')}.`,
      responses: { 200: { description: 'the asset', media: 'application/octet-stream' } },
      errors: { 404: ['NOT_FOUND'] },
    }),
    async (c) => {
      const asset = await referenceAsset(c.req.param('name'));
      if (!asset) throw notFound('no such asset');
      return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, { 'content-type': asset.type, 'cache-control': 'public, max-age=3600' });
    },
  );

  return app;
}
