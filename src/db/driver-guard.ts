import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

// Left in postgres.js by the committed patch (.ci/patches/postgres+3.4.9.patch).
const MARK = '/* memfed: nextWrite guard */';

/**
 * postgres.js 3.4.x can throw from a deferred write after its connection closed, outside
 * any caller's reach, which kills the process (porsager/postgres #1154, #1208). memfed
 * runs only with the patched driver, which rejects those queries with a catchable
 * CONNECTION_CLOSED instead; `npm ci` applies the patch (patch-package, postinstall).
 */
export function assertDriverGuard(): void {
  const require = createRequire(import.meta.url);
  // The ESM build is what memfed loads: <root>/src/connection.js (the CJS entry is <root>/cjs/src/index.js).
  const root = path.resolve(path.dirname(require.resolve('postgres')), '../..');
  const source = readFileSync(path.join(root, 'src', 'connection.js'), 'utf8');
  if (!source.includes(MARK)) throw new Error('postgres.js is not patched (its connection-close guard is missing): run `npm ci` (it applies .ci/patches/ with patch-package)');
}
