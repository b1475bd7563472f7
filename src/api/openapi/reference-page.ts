import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/*
 * The interactive reference beside the document: Swagger UI, served from the
 * swagger-ui-dist package on this node (no CDN, so it works on an offline network).
 */

/** The files the page loads, by the name it asks for; nothing else is served. */
const ASSETS: Record<string, { file?: string; type: string }> = {
  'swagger-ui.css': { file: 'swagger-ui.css', type: 'text/css; charset=utf-8' },
  'swagger-ui-bundle.js': { file: 'swagger-ui-bundle.js', type: 'text/javascript; charset=utf-8' },
  'favicon-32x32.png': { file: 'favicon-32x32.png', type: 'image/png' },
  'init.js': { type: 'text/javascript; charset=utf-8' },
};

export const ASSET_NAMES = Object.keys(ASSETS);

// Relative URLs: the page is /api/v1/docs, its assets /api/v1/docs/assets/*, the document
// /api/v1/openapi.json, so the page also works behind a proxy that mounts the API elsewhere.
// validatorUrl null: Swagger UI would otherwise send the document to an outside validator.
const INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#swagger-ui', validatorUrl: null, deepLinking: true, defaultModelsExpandDepth: 0 });
});
`;

export const REFERENCE_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>memfed HTTP API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/init.js"></script>
</body>
</html>
`;

/** Only this origin: a page that tried to load anything from elsewhere would be blocked. */
export const REFERENCE_PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

let distDir: string | undefined;
const cache = new Map<string, Uint8Array>();

/** An asset's bytes and media type, or null for a name the page never asks for. */
export async function referenceAsset(name: string): Promise<{ body: Uint8Array; type: string } | null> {
  const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name]! : undefined;
  if (!asset) return null;
  let body = cache.get(name);
  if (!body) {
    if (asset.file === undefined) body = new TextEncoder().encode(INIT_JS);
    else {
      distDir ??= dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
      body = new Uint8Array(await readFile(join(distDir, asset.file)));
    }
    cache.set(name, body);
  }
  return { body, type: asset.type };
}
